"""Keep Streamlit in the navigation app.py declares, from a server's very first script run.

Streamlit decides at its first session whether an app is a "pages directory" app (version 1
of multipage apps) by looking for ``pages/`` next to the entry script, which the project's
layout has, and only forgets it once ``st.navigation`` runs. Until then it runs scripts its
own way: opening ``/fleet`` as the first page after a start runs pages/fleet.py alone (no
login box, no demo-mode refusal, Streamlit's own page list), and at the root URL it runs
app.py nested in a generated navigation, so the sidebar forms of that first run get other
widget ids and their first submission is dropped (an operator's first "Start" did nothing).

The flag is Streamlit's (``PagesManager.uses_pages_directory``, read before every run); no
setting turns the directory mode off, and the layout keeps ``pages/``. So the entry script and
every page call :func:`use_declared_navigation` first: in directory mode it switches the mode
off and reruns, and the rerun executes app.py, whose ``st.navigation`` opens the page the URL
names. Proven in a real browser by tests/e2e/test_dashboard_first_session.py.

Only a process's first script run can find the mode on (nothing turns it back on), so the check
is made once per process. Streamlit's AppTest does turn it back on before every run it makes;
rerunning there would drop the click or input the test just made, so those runs go as before.
"""

from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


_checked = False


def use_declared_navigation() -> None:
    """At the process's first script run, rerun through app.py if Streamlit is in its pages-directory mode."""
    global _checked
    if _checked:
        return
    _checked = True
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
