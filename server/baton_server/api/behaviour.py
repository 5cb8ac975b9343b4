"""GuidelineService, CannedResponseService and ToolService servicers."""

from __future__ import annotations

from typing import Any

import grpc

from baton_server.api.mapping import (
    canned_response_to_proto,
    check_update_mask,
    guideline_to_proto,
    require_id,
    require_name,
    tool_to_proto,
)
from baton_server.api.protos import rr, svc_grpc
from baton_server.errors import InvalidArgument
from baton_server.store import Repository
from baton_server.tools import ToolRegistry

Context = grpc.aio.ServicerContext


def check_tool_names(names: list[str], tools: ToolRegistry, field: str) -> list[str]:
    for i, name in enumerate(names):
        if tools.get(name) is None:
            known = ", ".join(t.name for t in tools.all()) or "none loaded"
            raise InvalidArgument.single(
                f"{field}[{i}]", f"unknown tool {name!r}; known tools: {known}"
            )
    return names


class GuidelineServicer(svc_grpc.GuidelineServiceServicer):
    def __init__(self, repository: Repository, tools: ToolRegistry) -> None:
        self._repo = repository
        self._tools = tools

    async def CreateGuideline(self, request: Any, context: Context) -> Any:
        draft = request.guideline
        guideline = await self._repo.create_guideline(
            require_id(draft.agent_id, "guideline.agent_id"),
            require_name(draft.condition, "guideline.condition"),
            require_name(draft.action, "guideline.action"),
            check_tool_names(list(draft.tool_names), self._tools, "guideline.tool_names"),
            draft.enabled,
        )
        return rr.CreateGuidelineResponse(guideline=guideline_to_proto(guideline))

    async def GetGuideline(self, request: Any, context: Context) -> Any:
        guideline = await self._repo.get_guideline(require_id(request.guideline_id, "guideline_id"))
        return rr.GetGuidelineResponse(guideline=guideline_to_proto(guideline))

    async def ListGuidelines(self, request: Any, context: Context) -> Any:
        page = await self._repo.list_guidelines(
            request.page_size, request.page_token, request.agent_id
        )
        return rr.ListGuidelinesResponse(
            guidelines=[guideline_to_proto(g) for g in page.items],
            next_page_token=page.next_page_token,
        )

    async def UpdateGuideline(self, request: Any, context: Context) -> Any:
        guideline_id = require_id(request.guideline_id, "guideline_id")
        paths = check_update_mask(
            list(request.update_mask.paths), ("condition", "action", "tool_names", "enabled")
        )
        draft = request.guideline
        changes: dict[str, Any] = {}
        if "condition" in paths:
            changes["condition"] = require_name(draft.condition, "guideline.condition")
        if "action" in paths:
            changes["action"] = require_name(draft.action, "guideline.action")
        if "tool_names" in paths:
            changes["tool_names"] = check_tool_names(
                list(draft.tool_names), self._tools, "guideline.tool_names"
            )
        if "enabled" in paths:
            changes["enabled"] = draft.enabled
        guideline = await self._repo.update_guideline(guideline_id, **changes)
        return rr.UpdateGuidelineResponse(guideline=guideline_to_proto(guideline))

    async def DeleteGuideline(self, request: Any, context: Context) -> Any:
        await self._repo.delete_guideline(require_id(request.guideline_id, "guideline_id"))
        return rr.DeleteGuidelineResponse()


class CannedResponseServicer(svc_grpc.CannedResponseServiceServicer):
    def __init__(self, repository: Repository) -> None:
        self._repo = repository

    async def CreateCannedResponse(self, request: Any, context: Context) -> Any:
        draft = request.canned_response
        canned = await self._repo.create_canned_response(
            require_id(draft.agent_id, "canned_response.agent_id"),
            require_name(draft.text, "canned_response.text"),
        )
        return rr.CreateCannedResponseResponse(canned_response=canned_response_to_proto(canned))

    async def GetCannedResponse(self, request: Any, context: Context) -> Any:
        canned = await self._repo.get_canned_response(
            require_id(request.canned_response_id, "canned_response_id")
        )
        return rr.GetCannedResponseResponse(canned_response=canned_response_to_proto(canned))

    async def ListCannedResponses(self, request: Any, context: Context) -> Any:
        page = await self._repo.list_canned_responses(
            request.page_size, request.page_token, request.agent_id
        )
        return rr.ListCannedResponsesResponse(
            canned_responses=[canned_response_to_proto(c) for c in page.items],
            next_page_token=page.next_page_token,
        )

    async def UpdateCannedResponse(self, request: Any, context: Context) -> Any:
        canned_id = require_id(request.canned_response_id, "canned_response_id")
        check_update_mask(list(request.update_mask.paths), ("text",))
        canned = await self._repo.update_canned_response(
            canned_id, text=require_name(request.canned_response.text, "canned_response.text")
        )
        return rr.UpdateCannedResponseResponse(canned_response=canned_response_to_proto(canned))

    async def DeleteCannedResponse(self, request: Any, context: Context) -> Any:
        await self._repo.delete_canned_response(
            require_id(request.canned_response_id, "canned_response_id")
        )
        return rr.DeleteCannedResponseResponse()


class ToolServicer(svc_grpc.ToolServiceServicer):
    def __init__(self, tools: ToolRegistry) -> None:
        self._tools = tools

    async def ListTools(self, request: Any, context: Context) -> Any:
        return rr.ListToolsResponse(tools=[tool_to_proto(t) for t in self._tools.all()])
