"""`coattail dev cluster`: a local Kubernetes control plane for the `cluster` test tier and developers."""

from coattail.devservices.cluster.local import (
    APP_NAMESPACE,
    ClusterError,
    ComponentInfo,
    LocalCluster,
    bin_dir,
)

__all__ = ["APP_NAMESPACE", "ClusterError", "ComponentInfo", "LocalCluster", "bin_dir"]
