"""TickOps operator dashboard (Streamlit entry point): rendering only, no pipeline logic.

The process-wide resources (settings, store) are created once per process with
``st.cache_resource``; pages read from them and never block a render on the feed.
"""

from __future__ import annotations

import streamlit as st

from config import ConfigError, Settings, load_settings
from monitoring.logs import configure_logging
from storage.factory import open_store
from storage.migrate import migrate
from storage.store import Store, StorageError


@st.cache_resource
def settings() -> Settings:
    loaded = load_settings()
    configure_logging(loaded.log_level)
    return loaded


@st.cache_resource
def store() -> Store:
    opened = open_store(settings())
    migrate(opened)
    return opened


def main() -> None:
    st.set_page_config(page_title="TickOps", page_icon="📈", layout="wide")
    st.title("TickOps")
    st.caption("IQFeed → Kafka → ClickHouse, watched by an operator")
    try:
        config = settings()
    except ConfigError as exc:
        st.error(f"Configuration error — fix it and restart:\n\n```\n{exc}\n```")
        st.stop()
    cols = st.columns(3)
    cols[0].metric("Feed", config.feed.mode)
    cols[1].metric("Bus", config.bus.kind)
    cols[2].metric("Storage", config.storage.backend)
    try:
        db = store()
        version = ".".join(map(str, db.server_version()))
        counts = {
            table: db.query(f"SELECT count() FROM {db.table(table)}")[0][0]
            for table in ("trades", "quotes", "depth")
        }
    except StorageError as exc:
        st.error(f"Storage unavailable: {exc}")
    else:
        st.subheader("Storage")
        st.write(f"ClickHouse {version} · database `{db.database}`")
        st.dataframe([{"table": t, "rows": n} for t, n in counts.items()], hide_index=True)
    with st.expander("Settings (secrets redacted)"):
        st.json(config.redacted())


main()
