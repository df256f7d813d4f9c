"""Per-symbol sector lookups on KIS's overseas TRs (the enrich job's middle tier).

HHDFS76200200 price-detail answers a sector *name* (``e_icod``) per symbol; HHDFS76370000
industry-theme lists the stocks filed under one industry code, which cross-checks the masters'
``icod``. Both are real-only (the paper host lacks price-detail, ref-KIS §2; industry-theme's is
UNCONFIRMED), so a paper client refuses them before sending anything. CTPF1702R
(``KisClient.overseas_info``) is the third lookup; its ``prdt_clsf_cd/name`` is UNCONFIRMED.
"""

from __future__ import annotations

from observer.errors import KisApiError, KisProtocolError
from observer.kis.client import KisClient
from observer.kis.endpoints import ENDPOINTS
from observer.kis.parse import decode_json
from observer.kis.schemas import IndustryMemberRow, PriceDetailOutput

__all__ = ["MAX_MEMBER_PAGES", "industry_members", "price_detail"]

MAX_MEMBER_PAGES = 50  # a code's list is paged by tr_cont; more than this is not one list


async def price_detail(client: KisClient, exchange: str, symbol: str) -> PriceDetailOutput | None:
    """HHDFS76200200 for ``symbol`` on ``exchange``; None when KIS does not know it."""
    page = await client.get(
        ENDPOINTS["overseas_price_detail"], {"AUTH": "", "EXCD": exchange, "SYMB": symbol}
    )
    detail = decode_json(bytes(page.answer.output), PriceDetailOutput, "overseas_price_detail")
    return detail if detail.last.strip() else None


async def industry_members(client: KisClient, exchange: str, icod: str) -> list[str]:
    """HHDFS76370000: the symbols KIS files under ``icod`` on ``exchange`` (every volume).

    ``icod`` is sent as the answer of HHDFS76370100 spells it (3 digits in its sample);
    "no data" (rt_cd 7) is an empty list.
    """
    symbols: list[str] = []
    params = {"AUTH": "", "EXCD": exchange, "ICOD": icod, "VOL_RANG": "0", "KEYB": ""}
    more = False
    for _ in range(MAX_MEMBER_PAGES):
        try:
            page = await client.get(ENDPOINTS["overseas_industry_members"], params, next_page=more)
        except KisApiError as exc:
            if exc.msg_cd.startswith("rt_cd=7") or exc.msg_cd == "KIOK0560":
                return symbols
            raise
        raw = bytes(page.answer.output2).strip()
        if raw not in (b"null", b'""', b"[]"):
            rows = decode_json(raw, list[IndustryMemberRow], "overseas_industry_members")
            symbols += [r.symb.strip() for r in rows if r.symb.strip()]
        if not page.more:
            return symbols
        more = True
    raise KisProtocolError(f"HHDFS76370000 {exchange} {icod}: over {MAX_MEMBER_PAGES} pages")
