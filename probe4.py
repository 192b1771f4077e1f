import tracemalloc, numpy as np, sys, linecache
sys.path.insert(0,'/work/main')
from sklearn.ensemble import HistGradientBoostingClassifier
from mlstages.components.train.holdout_fit import fit_on_matrix
n=578_524; rng=np.random.default_rng(0)
X=rng.standard_normal((n,52)); X[:,47:]=rng.integers(0,50,(n,5)); y=(X[:,0]+rng.standard_normal(n)>0).astype(int)
tracemalloc.start(30)
m=HistGradientBoostingClassifier(random_state=0, categorical_features=[False]*47+[True]*5, max_iter=3)
fit_on_matrix(m,X,y,0)
print(tracemalloc.get_traced_memory())
