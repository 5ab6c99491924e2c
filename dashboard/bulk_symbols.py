"""The Fleet page's symbol sections: add a pasted or uploaded list at once, or roll it out in stages.

Both begin with a preview (dashboard/symbol_list.py): the operator sees every rejected entry with its
reason, and what is wanted already, before anything starts. Every start is the sidebar's start (the
engine's or attached runtime's ``start_symbol``: checked, audited, in a fleet written to the
assignment topic first). A staged rollout is run by the process (runtime/rollout_runner.py), not by
this page, so this page only begins it, shows it and pauses or cancels it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import streamlit as st

from dashboard import resources
from dashboard.auth import Operator, can_act
from dashboard.format import age
from dashboard.symbol_list import SymbolList, UnreadableUpload, parse_symbol_list, upload_text
from runtime.bulk_start import StartOutcome, start_many
from runtime.rollout import (DEFAULT_STAGES, DEFAULT_STALL_AFTER_S, FINAL, InvalidStages, RolloutConflict,
                             RolloutProgress, RolloutState, parse_stages)

PREVIEW = "bulk_preview"
OUTCOME = "bulk_outcome"
CONTROL_ERROR = "rollout_control_error"
SHOWN = 30  # symbols listed by name in a preview; the rest are counted


def render_bulk_add(engine: Any, who: Operator | None) -> None:
    st.subheader("Add symbols")
    if not can_act(who):
        st.caption("Sign in as an operator to add symbols in bulk or roll them out in stages.")
        return
    assert who is not None
    text = st.text_area("Symbols to add", key="bulk_text", height=120,
                        placeholder="AAPL, MSFT, NVDA … one per line, or separated by commas or spaces")
    upload = st.file_uploader("or upload a list (.txt or .csv with a symbol column)", type=["txt", "csv"],
                              key="bulk_file")
    if upload is not None:  # the server has the file: Preview reads it (before this run, it would read nothing)
        st.caption(f"{upload.name}: {upload.size:,} bytes received; Preview lists its symbols.")
    cols = st.columns(3)
    depth = cols[0].checkbox("with Level 2 depth", key="bulk_depth")
    # as in the sidebar: in a fleet, a collector over its watch limit watches critical symbols first
    critical = cols[1].checkbox("critical", key="bulk_critical") if engine.fleet is not None else False
    if cols[2].button("Preview", key="bulk_preview_button"):
        _preview(engine, text, upload)
    outcome: StartOutcome | None = st.session_state.get(OUTCOME)
    if outcome is not None:
        _show_outcome(outcome)
    preview: SymbolList | None = st.session_state.get(PREVIEW)
    if preview is None:
        return
    _show_preview(preview)
    if not preview.accepted:
        return
    _warn_capacity(engine, len(preview.accepted))
    st.markdown("**Start them all now**, or **roll them out in stages** (each stage only once the previous "
                "one is healthy: every symbol has data, no critical alert, the pipeline not behind).")
    left, right = st.columns(2)
    if left.button(f"Start {len(preview.accepted):,} symbols now", type="primary", key="bulk_apply"):
        _apply(engine, who, preview, depth=depth, critical=critical)
    stages = right.text_input("Stages (symbols started after each)", ", ".join(map(str, DEFAULT_STAGES)),
                              key="rollout_stages")
    stall = right.number_input("Report a stage stalled after (s)", min_value=10.0, value=DEFAULT_STALL_AFTER_S,
                               step=30.0, key="rollout_stall_s")
    if right.button("Roll out in stages", key="rollout_begin"):
        _begin_rollout(who, preview, stages, stall, depth=depth, critical=critical)


def _preview(engine: Any, text: str, upload: Any) -> None:
    st.session_state.pop(OUTCOME, None)
    if upload is not None:
        try:
            text = f"{text}\n{upload_text(upload.name, upload.getvalue())}"
        except UnreadableUpload as exc:
            st.session_state.pop(PREVIEW, None)
            st.error(str(exc))
            return
    wanted = {spec.symbol for spec in engine.desired_symbols() if spec.level1}
    st.session_state[PREVIEW] = parse_symbol_list(text, wanted)


def _named(symbols: tuple[str, ...]) -> str:
    return ", ".join(symbols[:SHOWN]) + (f" … and {len(symbols) - SHOWN:,} more" if len(symbols) > SHOWN else "")


def _show_preview(preview: SymbolList) -> None:
    if preview.empty:
        st.info("The list holds no symbol.")
        return
    st.write(f"**{len(preview.accepted):,} to start**" + (f": {_named(preview.accepted)}" if preview.accepted else ""))
    if preview.already_wanted:
        st.caption(f"{len(preview.already_wanted):,} wanted already (nothing to do): {_named(preview.already_wanted)}")
    if preview.rejected:
        st.warning(f"{len(preview.rejected):,} entries rejected: they will not be started.")
        st.dataframe([{"entry": r.entry, "reason": r.reason} for r in preview.rejected], hide_index=True,
                     width="stretch")


def _warn_capacity(engine: Any, adding: int) -> None:
    """Before anything starts: the watch limits (the responsive collectors', embedded this process's) as the
    start would judge them, so an operator trims the list rather than learns it halfway through."""
    capacity = engine.fleet_view().capacity()
    if not capacity.instances:
        return
    room = max(0, capacity.capacity - capacity.wanted)
    if adding > room:
        st.warning(f"Only {room:,} more symbols fit: {capacity.wanted:,} are wanted and the watch limits add up to "
                   f"{capacity.capacity:,}. Starting stops at the limit; the other {adding - room:,} would be "
                   "refused. Stop symbols, raise feed.watch_limit (and the account's), or add a collector.")


def _apply(engine: Any, who: Operator, preview: SymbolList, *, depth: bool, critical: bool) -> None:
    total = len(preview.accepted)
    bar = st.progress(0.0, text=f"Starting {total:,} symbols")
    outcome = start_many(lambda symbol: engine.start_symbol(symbol, depth=depth, critical=critical, by=who.name),
                         preview.accepted,
                         progress=lambda done, of: bar.progress(done / of, text=f"Started {done:,} of {of:,}"))
    st.session_state[OUTCOME] = outcome
    st.session_state.pop(PREVIEW, None)
    st.rerun()  # the sidebar's count and the fleet's load include them now


def _show_outcome(outcome: StartOutcome) -> None:
    if outcome.started:
        st.success(f"Started {len(outcome.started):,} symbols: {_named(outcome.started)}")
    if outcome.refused:
        first = next(iter(outcome.refused.values()))
        st.error(f"{len(outcome.refused):,} symbols not started"
                 + (f" — {first}" if outcome.limit_reached else ""))
        st.dataframe([{"symbol": symbol, "why": why} for symbol, why in outcome.refused.items()],
                     hide_index=True, width="stretch")


def _begin_rollout(who: Operator, preview: SymbolList, stages_text: str, stall_s: float, *, depth: bool,
                   critical: bool) -> None:
    try:
        resources.rollout().begin(preview.accepted, parse_stages(stages_text), depth=depth, critical=critical,
                                  by=who.name, stall_after_s=stall_s)
    except (InvalidStages, RolloutConflict) as exc:
        st.error(str(exc))
        return
    st.session_state.pop(PREVIEW, None)
    st.session_state.pop(OUTCOME, None)
    st.toast("Rollout begun: its first stage starts within a second")
    st.rerun()


_STATE_BOX = {RolloutState.STALLED: st.error, RolloutState.HALTED: st.error, RolloutState.DONE: st.success,
              RolloutState.CANCELLED: st.info, RolloutState.PAUSED: st.info}


@st.fragment(run_every=resources.settings().dashboard.refresh_s)
def render_rollout(who: Operator | None) -> None:
    progress = resources.rollout().progress()
    if progress is None:
        return
    st.subheader("Staged rollout")
    total = progress.targets[-1]
    cols = st.columns(4)
    cols[0].metric("Stage", f"{progress.stage} of {len(progress.targets)}")
    cols[1].metric("State", progress.state.value)
    cols[2].metric("Symbols started", f"{progress.started:,} of {total:,}")
    cols[3].metric("Stage healthy", f"{progress.stage_healthy:,} of {progress.stage_size:,}")
    st.progress(progress.started / total, text="Stages: " + " → ".join(f"{n:,}" for n in progress.targets))
    starting = resources.rollout().starting()
    if starting is not None:
        st.progress(starting[0] / max(starting[1], 1), text=f"Starting stage {progress.stage}: "
                                                            f"{starting[0]:,} of {starting[1]:,}")
    _explain(progress)
    if can_act(who):
        _controls(who, progress)


def _explain(progress: RolloutProgress) -> None:
    since = f" · stage started {age(progress.stage_started_ns)}" if progress.stage_started_ns else ""
    # the process that began it ended (a restart, a crash): this one took it up from storage
    resumed = f" · resumed after restart at {_hh_mm(progress.resumed_ns)}" if progress.resumed_ns else ""
    st.caption(f"Begun by {progress.by}{since}{resumed}")
    box = _STATE_BOX.get(progress.state, st.warning)
    reasons = "\n".join(f"- {reason}" for reason in progress.reasons)
    if progress.state is RolloutState.DONE:
        box(f"Done: all {progress.targets[-1]:,} symbols started, every stage healthy.")
    elif progress.state is RolloutState.CANCELLED:
        box("Cancelled: nothing more is started; the symbols started stay watched (stop them from the sidebar)."
            + (f" It was waiting for:\n{reasons}" if reasons else ""))
    elif progress.state is RolloutState.PAUSED:
        box("Paused: nothing is started or advanced until resumed." + (f" Last seen:\n{reasons}" if reasons else ""))
    elif reasons:
        verb = {RolloutState.STALLED: "Stalled", RolloutState.HALTED: "Halted"}.get(progress.state, "Waiting")
        box(f"{verb}:\n{reasons}")
    if progress.refused:
        st.dataframe([{"symbol": s, "why": why} for s, why in progress.refused.items()], hide_index=True,
                     width="stretch")


def _hh_mm(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, tz=timezone.utc).strftime("%H:%M UTC")


def _controls(who: Operator, progress: RolloutProgress) -> None:
    """Callbacks, so the change is made before the fragment renders again (in a full rerun as well)."""
    error = st.session_state.pop(CONTROL_ERROR, None)
    if error:
        st.error(error)
    if progress.state in FINAL:
        return
    runner = resources.rollout()
    cols = st.columns(4)
    if progress.state is RolloutState.PAUSED:
        cols[0].button("Resume rollout", key="rollout_resume", on_click=_operate, args=(runner.resume, who.name))
    else:
        cols[0].button("Pause rollout", key="rollout_pause", on_click=_operate, args=(runner.pause, who.name))
    cols[1].button("Cancel rollout", key="rollout_cancel", on_click=_operate, args=(runner.cancel, who.name))


def _operate(change: Callable[[str], None], by: str) -> None:
    try:
        change(by)
    except RolloutConflict as exc:  # the job moved it on meanwhile (finished, halted)
        st.session_state[CONTROL_ERROR] = str(exc)
