"""Hardened Jupyter server configuration of the SPE workspace image.

Baked into the image at $JUPYTER_CONFIG_DIR (/opt/spe/etc/jupyter, root-owned, the highest
priority config location), so a researcher cannot override it with a file of their own.
Applies to `jupyterhub-singleuser`, `jupyter lab` and `jupyter server` alike.

What it does (why: results leave a secure processing environment only through egress review):
* notebook root = /home/jovyan/work; the extract at /data is outside it, and
  `spe_hardening.RootedContentsManager` stops symlinks from reaching it;
* `/files/`, `/view/`, `/nbconvert/` answer 403 (`spe_hardening.default_handlers`);
* JupyterLab's download / export / open-in-browser-tab commands are disabled by
  labconfig/page_config.json (beside this file);
* no outbound update or news checks (the workspace has no route out anyway).
Terminals stay enabled: a terminal reaches nothing a kernel could not, and sessions are audited
by the hub.
"""

c = get_config()  # noqa: F821 (provided by traitlets when the file is loaded)

c.ServerApp.root_dir = "/home/jovyan/work"
c.ServerApp.preferred_dir = "/home/jovyan/work"
c.ServerApp.open_browser = False
c.ServerApp.terminals_enabled = True

# 403 handlers for download routes, matched before jupyter_server's own.
c.ServerApp.extra_services = ["spe_hardening"]
c.ServerApp.contents_manager_class = "spe_hardening.RootedContentsManager"
c.ContentsManager.allow_hidden = False
# The trash would be ~/.local/share/Trash on a read-only root filesystem: delete for real.
c.FileContentsManager.delete_to_trash = False
c.FileContentsManager.always_delete_dir = False

# Notebook trust signatures: the default database lives under the read-only home.
c.NotebookNotary.db_file = ":memory:"

# No calls out from the server (there is no route out; avoid timeouts and log noise).
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.LabApp.news_url = None
c.LabApp.extension_manager = "readonly"
