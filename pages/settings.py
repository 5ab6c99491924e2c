"""Settings (admins only): the effective settings this process runs with, secrets redacted, and their digest.

The digest is the one each engine start records in the audit trail, so an admin can tell
which start these settings belong to.
"""

import streamlit as st

from alerts.settings_audit import settings_digest
from dashboard import resources
from dashboard.auth import can_administer
from dashboard.navigation_mode import use_declared_navigation

use_declared_navigation()

st.title("Settings")
if not can_administer(resources.operator()):
    st.warning("Only admins see the settings.")
    st.stop()
config = resources.settings()
redacted = config.redacted()
st.caption(f"Digest `{settings_digest(redacted)}` · secrets shown as `**********` when set, empty when not.")
legacy = config.dashboard.legacy_operators()
if legacy:
    st.warning(f"Legacy password_sha256 entries: {', '.join(legacy)}.")
st.json(redacted, expanded=1)
