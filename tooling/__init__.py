"""The suite's tooling: the `mlstages` command line, the local runner, the container builder, the
Kubeflow Pipelines client (submit, schedule) and the compiler driver. Nothing here runs inside a
pipeline task; the components and pipelines do not import it, except the pipeline definitions'
platform settings."""
