"""Where the lifecycle service's deletions happen: one backend per place workspaces run.

`hub.lifecycle` decides (pure) and audits; a backend only does "delete the work volumes of
this permit" and says what it deleted. Stopping workspaces goes through the hub API on every
backend, and extracts are files under SPE_HOME (the extracts PVC in the hub pod), so neither
needs a backend.

- `DockerWorkVolumes`: the Docker volumes labelled `spe.permit=<slug>` of this deployment
  (`spe.deployment=<name prefix>`), as hub.spawner.docker creates them;
- `KubeWorkVolumes`: the PersistentVolumeClaims labelled `spe.permit=<slug>` in the hub's
  namespace, as hub.spawner.kube creates them (`storage_extra_labels`), through the hub's own
  service account (its Role may delete PVCs in its namespace only).

Must not import `egress`.
"""

from __future__ import annotations

from typing import Protocol

from hub.naming import safe_slug


def permit_label(permit_id: str) -> str:
    """The `spe.permit` label value both spawners put on a permit's workspaces and volumes (pure)."""
    return safe_slug(permit_id, prefix="p")


class WorkVolumes(Protocol):
    def delete_for_permit(self, permit_id: str) -> list[str]:
        """Delete every work volume of `permit_id`; the names of those deleted (sorted)."""


class DockerWorkVolumes:
    def __init__(self, client, name_prefix: str = "spe"):
        self.client, self.name_prefix = client, name_prefix

    def delete_for_permit(self, permit_id: str) -> list[str]:
        volumes = self.client.volumes.list(filters={"label": [f"spe.permit={permit_label(permit_id)}",
                                                              f"spe.deployment={self.name_prefix}"]})
        for vol in volumes:
            vol.remove(force=True)
        return sorted(v.name for v in volumes)


class KubeWorkVolumes:
    """`core` is a `kubernetes.client.CoreV1Api` (the synchronous client)."""

    def __init__(self, core, namespace: str):
        self.core, self.namespace = core, namespace

    @classmethod
    def in_cluster(cls, namespace: str) -> "KubeWorkVolumes":
        """With the pod's service account (KUBERNETES_SERVICE_HOST/PORT and its token)."""
        from kubernetes import client, config

        config.load_incluster_config()
        return cls(client.CoreV1Api(), namespace)

    def delete_for_permit(self, permit_id: str) -> list[str]:
        from kubernetes.client.exceptions import ApiException

        claims = self.core.list_namespaced_persistent_volume_claim(
            self.namespace, label_selector=f"spe.permit={permit_label(permit_id)}").items
        deleted = []
        for claim in claims:
            try:
                self.core.delete_namespaced_persistent_volume_claim(claim.metadata.name, self.namespace)
            except ApiException as err:
                if err.status != 404:  # gone meanwhile: nothing left to delete
                    raise
            deleted.append(claim.metadata.name)
        return sorted(deleted)
