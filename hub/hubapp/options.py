"""The SPE hub's settings as traitlets: `SpeHub` (both backends) and `SpeDockerHub` (one host).

A JupyterHub config file sets them like any other trait (`c.SpeHub.idle_timeout_seconds = 900`);
`SpeDockerHub.class_print_help()` lists every one with its unit, default and security effect.
Nothing here reads the environment by itself: the entry points (hub/jupyterhub_config.py,
`spe hub`) hand `os.environ` to `settings_from`, which maps the SPE_* variables of
`ENVIRONMENT` onto the traits; on Kubernetes the chart's values are the source
(hub.hubapp.config_kube). Where SPE keeps its state (SPE_HOME, SPE_DB_URL) is `hub.settings`,
shared with every `spe` command. Must not import `egress`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path

from traitlets import Bool, Integer, TraitError, Unicode, default, validate
from traitlets.config import Config, Configurable, PyFileConfigLoader

from hub.exceptions import InvalidInput
from hub.netfw import DEFAULT_BRIDGE, DEFAULT_CHAIN, DEFAULT_NETWORK, check_bridge_name, check_chain_name

MAX_EXTRACT_GRACE_DAYS = 183  # EHDS: processed data deleted at most six months after the permit ends
LIFECYCLE_MAX_PERIOD_SECONDS = 60  # workspaces of an ended permit stop within 60 s
MIN_IDLE_TIMEOUT_SECONDS = 60
MIN_AUDIT_CHECKPOINT_SECONDS = 60  # a signature a minute at most: the register stays readable
MAX_AUDIT_VERIFY_SECONDS = 7 * 86400  # the whole trail is verified at least weekly
AUTHENTICATORS = ("demo", "oidc")
FIREWALLS = ("enforce", "external")
_NAME_PREFIX = re.compile(r"[a-z][a-z0-9-]{0,19}")

# SPE_* variable -> trait; read only at the entry points (docs/operator-workspaces.md lists them)
ENVIRONMENT = {
    "SPE_PUBLIC_IP": "public_ip",
    "SPE_PUBLIC_PORT": "public_port",
    "SPE_PROXY_API_PORT": "proxy_api_port",
    "SPE_HUB_PORT": "hub_port",
    "SPE_EGRESS_PORT": "egress_port",
    "SPE_MIRROR_PORT": "mirror_port",
    "SPE_RECORDER_PORT": "recorder_port",
    "SPE_FRONTOFFICE_PORT": "frontoffice_port",
    "SPE_CITIZENS_PORT": "citizens_port",
    "SPE_NAME_PREFIX": "name_prefix",
    "SPE_NETWORK": "network",
    "SPE_BRIDGE": "bridge",
    "SPE_FIREWALL_CHAIN": "firewall_chain",
    "SPE_FIREWALL": "firewall",
    "SPE_IMAGE": "image",
    "SPE_IDLE_TIMEOUT_SECONDS": "idle_timeout_seconds",
    "SPE_LIFECYCLE_PERIOD_SECONDS": "lifecycle_period_seconds",
    "SPE_EXTRACT_GRACE_DAYS": "extract_grace_days",
    "SPE_AUDIT_CHECKPOINT_SECONDS": "audit_checkpoint_seconds",
    "SPE_AUDIT_VERIFY_SECONDS": "audit_verify_seconds",
    "SPE_AUTHENTICATOR": "authenticator",
    "SPE_SUPERVISED": "supervised",
}
_VARIABLE = {trait: var for var, trait in ENVIRONMENT.items()}


def _refuse(proposal, rule: str) -> TraitError:
    """One line naming the setting, its variable, the bad value and what would be accepted."""
    name = proposal["trait"].name
    var = f" ({_VARIABLE[name]})" if name in _VARIABLE else ""
    return TraitError(f"SpeHub.{name}{var} = {proposal['value']!r}: {rule}")


class SpeHub(Configurable):
    """Settings of SPE's hub that mean the same on a single host and on Kubernetes."""

    idle_timeout_seconds = Integer(3600, help=f"""
        Seconds without activity after which the idle culler stops a workspace (default 3600,
        at least {MIN_IDLE_TIMEOUT_SECONDS}). An unattended, logged-in workspace is an open door to
        the permit's data; culling also returns its memory and CPU. The work volume is kept.
        """).tag(config=True)

    lifecycle_period_seconds = Integer(30, help=f"""
        Seconds between two rounds of the lifecycle service (default 30, 1..{LIFECYCLE_MAX_PERIOD_SECONDS}).
        It bounds how long the workspace of an expired, suspended or revoked permit keeps running.
        """).tag(config=True)

    extract_grace_days = Integer(30, help=f"""
        Days after a permit ends before its extracts and work volumes are deleted (default 30,
        0..{MAX_EXTRACT_GRACE_DAYS}: EHDS Art. 68 lets processed data outlive the permit by at most six months).
        """).tag(config=True)

    audit_checkpoint_seconds = Integer(3600, help=f"""
        Seconds between two signed audit checkpoints made by the lifecycle service (default 3600,
        at least {MIN_AUDIT_CHECKPOINT_SECONDS}); a checkpoint is signed only when the trail grew.
        The public register publishes them: the shorter, the less the operator could rewrite unseen.
        """).tag(config=True)

    audit_verify_seconds = Integer(86400, help=f"""
        Seconds between two full verifications of the audit trail by the lifecycle service
        (default 86400, 60..{MAX_AUDIT_VERIFY_SECONDS}); each is recorded as `audit.verify` and
        its outcome is the metric spe_audit_last_verification_ok.
        """).tag(config=True)

    authenticator = Unicode("demo", help="""
        Who signs people in. `demo` (default on a single host): SPE's generated passwords
        (`spe hub users`), stored as scrypt hashes, every failure audited. `oidc` (default on
        Kubernetes): SPE leaves `JupyterHub.authenticator_class` to the site configuration
        (OAuthenticator, docs/operator-oidc.md). Either way every login is audited.
        """).tag(config=True)

    stop_workspaces_with_hub = Bool(False, help="""
        Stop every running workspace when the hub stops (`JupyterHub.cleanup_servers`). Default
        False: a hub restart must not cost researchers their kernels; on a single host the
        default is True while the proxy and the session recorder stop with the hub (a workspace
        left running would be unreachable and unrecorded).
        """).tag(config=True)

    @validate("idle_timeout_seconds")
    def _check_idle_timeout(self, proposal):
        if proposal["value"] < MIN_IDLE_TIMEOUT_SECONDS:
            raise _refuse(proposal, f"must be at least {MIN_IDLE_TIMEOUT_SECONDS} seconds")
        return proposal["value"]

    @validate("lifecycle_period_seconds")
    def _check_lifecycle_period(self, proposal):
        if not 1 <= proposal["value"] <= LIFECYCLE_MAX_PERIOD_SECONDS:
            raise _refuse(proposal, f"must be 1..{LIFECYCLE_MAX_PERIOD_SECONDS} seconds "
                                    "(an ended permit's workspace stops within one period)")
        return proposal["value"]

    @validate("extract_grace_days")
    def _check_grace(self, proposal):
        if not 0 <= proposal["value"] <= MAX_EXTRACT_GRACE_DAYS:
            raise _refuse(proposal, f"must be 0..{MAX_EXTRACT_GRACE_DAYS} days (EHDS: six months at most)")
        return proposal["value"]

    @validate("audit_checkpoint_seconds")
    def _check_checkpoint_period(self, proposal):
        if proposal["value"] < MIN_AUDIT_CHECKPOINT_SECONDS:
            raise _refuse(proposal, f"must be at least {MIN_AUDIT_CHECKPOINT_SECONDS} seconds")
        return proposal["value"]

    @validate("audit_verify_seconds")
    def _check_verify_period(self, proposal):
        if not 60 <= proposal["value"] <= MAX_AUDIT_VERIFY_SECONDS:
            raise _refuse(proposal, f"must be 60..{MAX_AUDIT_VERIFY_SECONDS} seconds")
        return proposal["value"]

    @validate("authenticator")
    def _check_authenticator(self, proposal):
        if proposal["value"] not in AUTHENTICATORS:
            raise _refuse(proposal, f"must be one of {', '.join(AUTHENTICATORS)}")
        return proposal["value"]


class SpeDockerHub(SpeHub):
    """Settings of SPE's hub on one Docker host: listeners, the internal network, its firewall,
    the workspace image. (`c.SpeHub.*` applies here too.)"""

    public_ip = Unicode("127.0.0.1", help="""
        Address of the public proxy (default 127.0.0.1: put a TLS reverse proxy in front).
        """).tag(config=True)
    public_port = Integer(8000, help="Port of the public proxy (default 8000).").tag(config=True)
    proxy_api_port = Integer(8001, help="""
        Port of configurable-http-proxy's API, on 127.0.0.1 only (default 8001).""").tag(config=True)
    hub_port = Integer(8081, help="""
        Port of the hub API on the internal network's gateway (default 8081); one of the two
        host ports a workspace can reach through the firewall.""").tag(config=True)
    egress_port = Integer(8100, help="""
        Port of the egress service on the internal network's gateway (default 8100); a host port
        a workspace can reach.""").tag(config=True)
    mirror_port = Integer(8110, help="""
        Port of the package mirror (hub.mirror.serve: reviewed wheels, read-only) on the internal
        network's gateway (default 8110); the third and last host port a workspace can reach.""").tag(config=True)
    recorder_port = Integer(0, help="""
        Port of the session recorder on 127.0.0.1, through which every workspace is reached
        (default 0: a free port chosen when the hub starts).""").tag(config=True)

    frontoffice_port = Integer(0, help="""
        Port of the front office service (catalogue, applications, fees) on 127.0.0.1, reached through
        the public proxy at /services/frontoffice/ (default 0: a free port chosen when the hub starts).""").tag(config=True)

    citizens_port = Integer(0, help="""
        Port of the citizens' service (opt-out, who used my data) on 127.0.0.1, reached through the
        public proxy at /services/citizens/ (default 0: a free port chosen when the hub starts).""").tag(config=True)

    name_prefix = Unicode("spe", help="""
        Prefix of container and volume names and value of their `spe.deployment` label (default
        `spe`; 1-20 characters [a-z0-9-], starting with a letter). Two deployments sharing one
        Docker engine need two prefixes, or one could stop or delete the other's workspaces.
        """).tag(config=True)
    network = Unicode(DEFAULT_NETWORK, help=f"""
        Internal Docker network of the workspaces (default `{DEFAULT_NETWORK}`): no route out,
        no traffic between workspaces.""").tag(config=True)
    bridge = Unicode(DEFAULT_BRIDGE, help=f"""
        Linux bridge interface of that network, named by the firewall rules (default
        `{DEFAULT_BRIDGE}`; 1-15 characters [A-Za-z0-9_.-]).""").tag(config=True)
    firewall_chain = Unicode(DEFAULT_CHAIN, help=f"""
        iptables chain that admits workspaces to the hub and egress ports only (default
        `{DEFAULT_CHAIN}`; 1-28 characters [A-Za-z0-9_-]).""").tag(config=True)
    firewall = Unicode("enforce", help="""
        `enforce` (default): the hub installs the workspace firewall and does not start if it
        cannot (fail closed). `external`: the site's own firewall enforces the same rules
        (docs/operator-workspaces.md); without it a workspace reaches every port of the host.
        """).tag(config=True)
    image = Unicode("spe/workspace:latest", help="""
        Workspace image (default `spe/workspace:latest`, built by `make images`; never pulled).
        """).tag(config=True)

    supervised = Bool(False, help="""
        True when supervisord runs the proxy and the services beside the hub (`spe hub start`,
        hub.hubapp.supervise; set as SPE_SUPERVISED=1 in the hub program's environment): the hub
        then starts neither, gives each service an API token from `<SPE_HOME>/hub/service-tokens.json`,
        and leaves the workspaces running when it stops. False (default; `jupyterhub -f
        hub/jupyterhub_config.py` by hand, the test fixture): the hub starts the proxy and the services as its children.
        """).tag(config=True)

    @default("stop_workspaces_with_hub")
    def _default_stop_with_hub(self):
        # unsupervised, the proxy and the recorder are the hub's children and stop with it (see the help)
        return not self.supervised

    @validate("public_port", "proxy_api_port", "hub_port", "egress_port", "mirror_port")
    def _check_port(self, proposal):
        if not 1 <= proposal["value"] <= 65535:
            raise _refuse(proposal, "must be a TCP port, 1..65535")
        return proposal["value"]

    @validate("recorder_port", "frontoffice_port", "citizens_port")
    def _check_recorder_port(self, proposal):
        if not 0 <= proposal["value"] <= 65535:
            raise _refuse(proposal, "must be a TCP port, 1..65535, or 0 for a free one")
        return proposal["value"]

    @validate("name_prefix")
    def _check_name_prefix(self, proposal):
        if not _NAME_PREFIX.fullmatch(proposal["value"]):
            raise _refuse(proposal, "must be 1-20 characters [a-z0-9-] starting with a letter")
        return proposal["value"]

    @validate("bridge", "firewall_chain")
    def _check_interface_names(self, proposal):
        check = check_bridge_name if proposal["trait"].name == "bridge" else check_chain_name
        try:
            return check(proposal["value"])
        except InvalidInput as err:
            raise _refuse(proposal, str(err).split(": ", 1)[-1]) from None

    @validate("firewall")
    def _check_firewall(self, proposal):
        if proposal["value"] not in FIREWALLS:
            raise _refuse(proposal, f"must be one of {', '.join(FIREWALLS)}")
        return proposal["value"]


def settings_from(environ: Mapping[str, str], *configs: Config, cls: type[SpeHub] = SpeDockerHub) -> SpeHub:
    """`cls` built from the SPE_* variables of `environ`, then each config in turn (a later one
    wins over the environment and the earlier ones). Unset or empty variables keep the default.
    A bad value raises InvalidInput: one line naming the setting, its variable and the fix."""
    traits = cls.class_traits(config=True)
    from_env = {}
    for var, name in ENVIRONMENT.items():
        raw = environ.get(var)
        if raw in (None, "") or name not in traits:
            continue
        try:
            from_env[name] = traits[name].from_string(raw)
        except ValueError:
            raise InvalidInput(f"{var} must be a whole number, not {raw!r}", field=var) from None
    merged = Config({"SpeHub": from_env})
    sections = [k.__name__ for k in cls.mro() if isinstance(k, type) and issubclass(k, SpeHub)]
    for config in configs:  # only SPE's sections, copied: the configs themselves stay untouched
        merged.merge(Config({name: copy.deepcopy(config[name]) for name in sections if name in config}))
    try:
        return cls(config=merged)
    except TraitError as err:
        raise InvalidInput(str(err)) from None


def site_config(path: str | None) -> Config:
    """The site's JupyterHub config file (SPE_HUB_EXTRA_CONFIG) as a Config, without applying it:
    its `c.SpeHub.*` settings feed `settings_from`, the rest is merged over SPE's configuration
    last. No path: an empty Config."""
    if not path:
        return Config()
    file = Path(path)
    if not file.is_file():
        raise InvalidInput(f"no such file: {path}", field="SPE_HUB_EXTRA_CONFIG")
    try:
        return PyFileConfigLoader(file.name, str(file.parent)).load_config()
    except Exception as err:  # the operator's own Python: name the file and the first line
        raise InvalidInput(f"{path} could not be loaded: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}",
                           field="SPE_HUB_EXTRA_CONFIG") from None
