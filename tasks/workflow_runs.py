"""Prefect flow runs a killed pipeline left behind: marked crashed when the pipeline starts again.

A pipeline killed with SIGKILL cannot tell Prefect's API it stopped, so its flow run and the stage
subflow it was in stay "Running" forever. The pipeline's state file keeps the id of the flow run that
last ran it; the next run of the same config (holding the config's lock, so the earlier one is surely
gone) marks that flow run and its running subflows Crashed, as the stage loop does for MLflow runs.
"""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectNotFound
from prefect.states import Crashed

from metacot_core.pipeline.state import PipelineState

TRACKER_KIND = "prefect"


def _running_children(client, parent_id) -> list:
    running = FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.RUNNING]))
    return client.read_flow_runs(flow_run_filter=FlowRunFilter(
        parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id]), state=running))


def crash_stale_flow_runs(state: PipelineState) -> list[str]:
    """Mark the previous flow run of this config (and its running subflows) Crashed when it is still
    Running and is not the current one; record the current flow run. Returns the ids marked."""
    ctx = FlowRunContext.get()
    current = str(ctx.flow_run.id) if ctx is not None and ctx.flow_run is not None else None
    previous = state.run_id(TRACKER_KIND)
    crashed: list[str] = []
    if previous and previous != current:
        with get_client(sync_client=True) as client:
            try:
                run = client.read_flow_run(previous)
            except ObjectNotFound:
                run = None
            if run is not None and run.state is not None and run.state.type == StateType.RUNNING:
                for stale in [*_running_children(client, run.id), run]:
                    client.set_flow_run_state(stale.id, Crashed(message="the process running it was killed; "
                                                                "a later run of this config found it"),
                                              force=True)
                    crashed.append(str(stale.id))
    if current:
        state.set_run(TRACKER_KIND, current)
    return crashed
