"""GuidelineService, CannedResponseService and ToolService servicers: map and delegate to the
catalog use cases (service/catalog.py)."""

from __future__ import annotations

from baton_server.api.grpc_types import Context
from baton_server.api.mapping import (
    canned_response_to_proto,
    check_update_mask,
    guideline_to_proto,
    require_id,
    require_name,
    tool_to_proto,
)
from baton_server.api.protos import rr, svc_grpc
from baton_server.domain import GuidelineChanges
from baton_server.service.catalog import Catalog


class GuidelineServicer(svc_grpc.GuidelineServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def CreateGuideline(
        self, request: rr.CreateGuidelineRequest, context: Context
    ) -> rr.CreateGuidelineResponse:
        draft = request.guideline
        guideline = await self._catalog.create_guideline(
            require_id(draft.agent_id, "guideline.agent_id"),
            require_name(draft.condition, "guideline.condition"),
            require_name(draft.action, "guideline.action"),
            list(draft.tool_names),
            draft.enabled,
        )
        return rr.CreateGuidelineResponse(guideline=guideline_to_proto(guideline))

    async def GetGuideline(
        self, request: rr.GetGuidelineRequest, context: Context
    ) -> rr.GetGuidelineResponse:
        guideline = await self._catalog.get_guideline(
            require_id(request.guideline_id, "guideline_id")
        )
        return rr.GetGuidelineResponse(guideline=guideline_to_proto(guideline))

    async def ListGuidelines(
        self, request: rr.ListGuidelinesRequest, context: Context
    ) -> rr.ListGuidelinesResponse:
        page = await self._catalog.list_guidelines(
            request.page_size, request.page_token, request.agent_id
        )
        return rr.ListGuidelinesResponse(
            guidelines=[guideline_to_proto(g) for g in page.items],
            next_page_token=page.next_page_token,
        )

    async def UpdateGuideline(
        self, request: rr.UpdateGuidelineRequest, context: Context
    ) -> rr.UpdateGuidelineResponse:
        guideline_id = require_id(request.guideline_id, "guideline_id")
        paths = check_update_mask(
            list(request.update_mask.paths), ("condition", "action", "tool_names", "enabled")
        )
        draft = request.guideline
        changes = GuidelineChanges(
            condition=(
                require_name(draft.condition, "guideline.condition")
                if "condition" in paths
                else None
            ),
            action=require_name(draft.action, "guideline.action") if "action" in paths else None,
            tool_names=tuple(draft.tool_names) if "tool_names" in paths else None,
            enabled=draft.enabled if "enabled" in paths else None,
        )
        guideline = await self._catalog.update_guideline(guideline_id, changes)
        return rr.UpdateGuidelineResponse(guideline=guideline_to_proto(guideline))

    async def DeleteGuideline(
        self, request: rr.DeleteGuidelineRequest, context: Context
    ) -> rr.DeleteGuidelineResponse:
        await self._catalog.delete_guideline(require_id(request.guideline_id, "guideline_id"))
        return rr.DeleteGuidelineResponse()


class CannedResponseServicer(svc_grpc.CannedResponseServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def CreateCannedResponse(
        self, request: rr.CreateCannedResponseRequest, context: Context
    ) -> rr.CreateCannedResponseResponse:
        draft = request.canned_response
        canned = await self._catalog.create_canned_response(
            require_id(draft.agent_id, "canned_response.agent_id"),
            require_name(draft.text, "canned_response.text"),
        )
        return rr.CreateCannedResponseResponse(canned_response=canned_response_to_proto(canned))

    async def GetCannedResponse(
        self, request: rr.GetCannedResponseRequest, context: Context
    ) -> rr.GetCannedResponseResponse:
        canned = await self._catalog.get_canned_response(
            require_id(request.canned_response_id, "canned_response_id")
        )
        return rr.GetCannedResponseResponse(canned_response=canned_response_to_proto(canned))

    async def ListCannedResponses(
        self, request: rr.ListCannedResponsesRequest, context: Context
    ) -> rr.ListCannedResponsesResponse:
        page = await self._catalog.list_canned_responses(
            request.page_size, request.page_token, request.agent_id
        )
        return rr.ListCannedResponsesResponse(
            canned_responses=[canned_response_to_proto(c) for c in page.items],
            next_page_token=page.next_page_token,
        )

    async def UpdateCannedResponse(
        self, request: rr.UpdateCannedResponseRequest, context: Context
    ) -> rr.UpdateCannedResponseResponse:
        canned_id = require_id(request.canned_response_id, "canned_response_id")
        check_update_mask(list(request.update_mask.paths), ("text",))
        canned = await self._catalog.update_canned_response(
            canned_id, require_name(request.canned_response.text, "canned_response.text")
        )
        return rr.UpdateCannedResponseResponse(canned_response=canned_response_to_proto(canned))

    async def DeleteCannedResponse(
        self, request: rr.DeleteCannedResponseRequest, context: Context
    ) -> rr.DeleteCannedResponseResponse:
        await self._catalog.delete_canned_response(
            require_id(request.canned_response_id, "canned_response_id")
        )
        return rr.DeleteCannedResponseResponse()


class ToolServicer(svc_grpc.ToolServiceServicer):
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    async def ListTools(
        self, request: rr.ListToolsRequest, context: Context
    ) -> rr.ListToolsResponse:
        return rr.ListToolsResponse(
            tools=[
                tool_to_proto(tool, self._catalog.tool_workers(tool.name))
                for tool in self._catalog.tools()
            ]
        )
