"""GET /v1/schedule: a schedule read back before it is saved, with its description and next fire
times, from common/preview.py as `pykronctl schedule` has it. Computed here in the api process;
the cluster is asked only for its default time zone, which a job without one gets."""

from __future__ import annotations

from common import errors, preview
from common.loop import now_ms
from services.api import dkron


class SchedulePreview:
    def __init__(self, node):
        self.node = node

    def on_get(self, req, resp):
        text = req.get_param("schedule")
        if not text:
            raise errors.BadRequest("schedule: the schedule to read, e.g. ?schedule=*/15 * * * *")
        zone = req.get_param("timezone") or self.node.client.settings(stale=True).get("default_timezone", "")
        count = dkron.whole_number(req, "count", preview.DEFAULT_COUNT)
        dkron.render(req, resp, preview.preview(text, timezone=zone, name=req.get_param("name") or "", count=count,
                                                now=now_ms()))
