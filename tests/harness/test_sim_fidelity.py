"""The simulator accepts what KIS's own sample client sends, and answers what it reads.

KIS's official sample (open-trading-api ``examples_user/kis_auth.py``) cannot be vendored here,
so this test re-enacts its requests byte for byte as documented in shared/reference
(kis-api.md §2.1, §2.3, §3.1, §5.2-5.5) and reads the answers the way the sample does.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import httpx
import websockets

from tests.harness.test_sim_server import MARKET, SYMBOL, simulator

# The sample's base headers: it posts json.dumps(...) with these, then adds auth headers.
BASE = {
    "Content-Type": "application/json",
    "Accept": "text/plain",
    "charset": "UTF-8",
    "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
}
KEY, SECRET = "PSsimTestAppKey000000000000000000000", "s" * 180


def test_the_sample_clients_conversation() -> None:
    async def scenario() -> None:
        async with simulator() as (_, url):
            async with httpx.AsyncClient(base_url=url) as http:
                body = json.dumps(
                    {"grant_type": "client_credentials", "appkey": KEY, "appsecret": SECRET}
                )
                token = await http.post("/oauth2/tokenP", content=body, headers=BASE)
                assert token.status_code == 200
                answer = token.json()
                # save_token() parses this exact format; read_token() compares it as text
                datetime.strptime(answer["access_token_token_expired"], "%Y-%m-%d %H:%M:%S")

                approval_body = json.dumps(
                    {"grant_type": "client_credentials", "appkey": KEY, "secretkey": SECRET}
                )
                approval = await http.post("/oauth2/Approval", content=approval_body, headers=BASE)
                approval_key = approval.json()["approval_key"]

                headers = BASE | {
                    "authorization": f"Bearer {answer['access_token']}",
                    "appkey": KEY,
                    "appsecret": SECRET,
                    "tr_id": "FHKST01010100",
                    "custtype": "P",
                    "tr_cont": "",
                }
                price = await http.get(
                    "/uapi/domestic-stock/v1/quotations/inquire-price",
                    params={"FID_COND_MRKT_DIV_CODE": "J", "FID_INPUT_ISCD": SYMBOL},
                    headers=headers,
                )
                assert price.status_code == 200  # the sample treats anything else as failure
                assert price.json()["rt_cd"] == "0"  # APIResp.isOK()
                assert int(price.json()["output"]["stck_prpr"]) > 0
                lowercase = [k for k in price.headers if k.islower()]  # _setHeader keeps these
                assert "content-type" in lowercase

            async with websockets.connect(url.replace("http", "ws") + "/tryitout") as ws:
                # data_fetch(): header {content-type, approval_key, tr_type, custtype}
                message = {
                    "header": {
                        "content-type": "utf-8",
                        "approval_key": approval_key,
                        "tr_type": "1",
                        "custtype": "P",
                    },
                    "body": {"input": {"tr_id": "H0STCNT0", "tr_key": SYMBOL}},
                }
                await ws.send(json.dumps(message))
                control = json.loads(await ws.recv())
                # system_resp(): header tr_id, tr_key, encrypt; body rt_cd, msg1, output iv/key
                assert control["header"]["tr_key"] == SYMBOL
                assert control["header"]["encrypt"] == "N"
                assert control["body"]["rt_cd"] == "0"
                assert {"iv", "key"} <= set(control["body"]["output"])
                async with asyncio.timeout(20):
                    while True:
                        data = await ws.recv()
                        assert isinstance(data, str)
                        if data[0] in ("0", "1"):  # the sample's data-frame test
                            break
                parts = data.split("|")
                assert parts[1] == "H0STCNT0" and parts[3].split("^")[0] == SYMBOL
                assert len(parts[3].split("^")) == 47 * int(parts[2])  # the 2026-09 layout

    assert SYMBOL in MARKET.listings
    asyncio.run(scenario())
