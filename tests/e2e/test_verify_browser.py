"""The verification panel in a real browser: "verified" only when the browser's own check passed.

Every tampering a server or a network could do is tried against the same running app: an entry
edited in the database, a proof hash altered in transit, a checkpoint signed by another key, a
wrong or malformed verifier key, a proof for another entry. Each must show the red failure
state with its reason. The in-browser verifier is also run against the Python verifier on every
entry of small trees and on hundreds of corrupted proof files: both must agree.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from digital_village.ledger import merkle, note
from digital_village.ledger.models import LedgerEntry
from digital_village.ledger.proof import TlogProof
from digital_village.ledger.verify import VerificationError, verify_proof
from tests.e2e.conftest import Live, screenshot

pytestmark = pytest.mark.browser

RED = "rgb(165, 14, 14)"


def open_panel(page: Any, live: Live, index: int, **query: str) -> dict[str, str]:
    """Load the test page with the panel for entry ``index`` and wait for the check to end."""
    params = "&".join(f"{key}={value}" for key, value in query.items())
    page.goto(f"{live.url}/test/verify/{index}" + (f"?{params}" if params else ""))
    panel = page.locator("[data-verify-panel]")
    page.wait_for_selector('[data-verify-panel]:not([data-state="checking"])', timeout=15_000)
    return {
        "state": panel.get_attribute("data-state"),
        "status": panel.locator("[data-verify-status]").inner_text(),
        "reason": panel.locator("[data-verify-reason]").inner_text(),
        "status_color": panel.locator("[data-verify-status]").evaluate(
            "element => getComputedStyle(element).color"
        ),
    }


def serve_modified(page: Any, path: str, edit: Callable[[bytes], bytes]) -> None:
    """Alter a response in transit, as a hostile network or proxy could."""

    def handler(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, body=edit(response.body()))

    page.route(f"**{path}", handler)


def vkey(live: Live) -> str:
    return live.ledger.vkey


def other_signer(name: str) -> note.Signer:
    return note.Signer.parse(note.generate_signer_key(name))


def log_size(live: Live) -> int:
    with live.db.session() as session:
        return len(session.scalars(select(LedgerEntry.seq)).all())


def test_an_honest_entry_is_verified_in_chinese_by_default(page: Any, live: Live) -> None:
    shown = open_panel(page, live, 2)
    key_id = vkey(live).split("+")[1]
    assert shown["state"] == "verified", shown
    assert shown["status"] == (
        f"已验证：第 2 号记录已收录在共 {log_size(live)} 条记录的账本中，"
        f"账本由 {live.settings.ledger_origin} ({key_id}) 签名"
    )
    assert shown["reason"] == ""
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    screenshot(page, "verify-verified-zh-CN")


def test_an_honest_entry_is_verified_in_english(page: Any, live: Live) -> None:
    shown = open_panel(page, live, 0, lang="en")
    key_id = vkey(live).split("+")[1]
    assert shown["state"] == "verified"
    assert shown["status"] == (
        f"verified — entry #0 is in the log of size {log_size(live)} "
        f"signed by {live.settings.ledger_origin} ({key_id})"
    )
    screenshot(page, "verify-verified-en")


def test_the_result_object_carries_the_proven_entry(page: Any, live: Live) -> None:
    page.goto(f"{live.url}/test/blank")
    page.wait_for_function("window.verifyReady === true")
    result = page.evaluate("index => window.verify.verifyEntry('', index)", 3)
    assert result == {
        "ok": True,
        "index": 3,
        "treeSize": log_size(live),
        "origin": live.settings.ledger_origin,
        "keyName": live.settings.ledger_origin,
        "keyId": vkey(live).split("+")[1],
        "entry": result["entry"],
        "reason": None,
        "witnesses": None,  # no witness policy was given
    }
    assert result["entry"]["data"] == {"n": 3, "product": "天府菜油", "lot": "RS2026-001"}
    assert result["entry"]["kind"] == "test.event"


def test_the_download_link_serves_the_proof_dv_verify_accepts(page: Any, live: Live) -> None:
    open_panel(page, live, 1)
    link = page.locator("[data-verify-download]")
    assert link.get_attribute("download") == "entry-1.tlog-proof"
    proof = httpx.get(live.url + (link.get_attribute("href") or "")).content
    assert verify_proof(proof, vkey(live)).index == 1


def flip_first_proof_hash(body: bytes) -> bytes:
    proof = TlogProof.parse(body)
    first = bytearray(proof.inclusion_proof[0])
    first[0] ^= 0x01
    return TlogProof(
        index=proof.index,
        inclusion_proof=(bytes(first), *proof.inclusion_proof[1:]),
        checkpoint=proof.checkpoint,
        extra=proof.extra,
    ).to_text()


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_proof_hash_altered_in_transit_fails(page: Any, live: Live, lang: str) -> None:
    serve_modified(page, "/api/v1/ledger/entries/1/proof", flip_first_proof_hash)
    shown = open_panel(page, live, 1, lang=lang)
    assert shown["state"] == "failed"
    assert (
        shown["status"]
        == {
            "zh-CN": "验证失败：这条记录未能通过本机浏览器的核验",
            "en": "verification FAILED: this browser's own check did not pass",
        }[lang]
    )
    assert "entry is not proven at index 1" in shown["reason"]
    assert "does not lead to the root" in shown["reason"]
    assert shown["status_color"] == RED
    screenshot(page, f"verify-failed-{lang}")


def test_a_forged_log_signed_by_another_key_fails(page: Any, live: Live) -> None:
    # The attacker builds a log with an altered entry 1 and signs it with their own key,
    # under the real log's name: the proof is internally consistent, only the key differs.
    forger = other_signer(live.settings.ledger_origin)

    def forge(body: bytes) -> bytes:
        honest = TlogProof.parse(body)
        entries = [json.dumps({"n": n, "forged": True}).encode() for n in range(log_size(live))]
        store = merkle.MemoryHashStore()
        for entry in entries:
            store.append(entry)
        checkpoint = note.Checkpoint(live.settings.ledger_origin, store.size, store.root())
        return TlogProof(
            index=honest.index,
            inclusion_proof=tuple(store.inclusion_proof(honest.index)),
            checkpoint=note.sign_note(checkpoint.to_text(), forger),
            extra=entries[honest.index],
        ).to_text()

    serve_modified(page, "/api/v1/ledger/entries/1/proof", forge)
    shown = open_panel(page, live, 1, lang="en")
    assert shown["state"] == "failed"
    assert "no signature from the trusted key" in shown["reason"]
    assert shown["status_color"] == RED


def test_a_checkpoint_changed_under_a_kept_signature_fails(page: Any, live: Live) -> None:
    def grow(body: bytes) -> bytes:
        proof = TlogProof.parse(body)
        text, _, signatures = proof.checkpoint.partition(b"\n\n")
        origin, size, root = text.split(b"\n")
        changed = b"\n".join([origin, str(int(size) + 1).encode(), root]) + b"\n\n" + signatures
        return TlogProof(proof.index, proof.inclusion_proof, changed, proof.extra).to_text()

    serve_modified(page, "/api/v1/ledger/entries/1/proof", grow)
    shown = open_panel(page, live, 1, lang="en")
    assert shown["state"] == "failed"
    assert "invalid signature for key" in shown["reason"]


def test_a_wrong_verifier_key_fails(page: Any, live: Live) -> None:
    wrong = other_signer(live.settings.ledger_origin).verifier().to_string()
    serve_modified(page, "/api/v1/ledger/key", lambda _: (wrong + "\n").encode())
    shown = open_panel(page, live, 2, lang="en")
    assert shown["state"] == "failed"
    assert "no signature from the trusted key" in shown["reason"]
    assert wrong.split("+")[1] in shown["reason"]


def test_a_pinned_key_other_than_the_logs_fails(page: Any, live: Live) -> None:
    wrong = other_signer("someone-else.example/log").verifier().to_string()
    shown = open_panel(page, live, 2, lang="en", vkey=wrong.replace("+", "%2B"))
    assert shown["state"] == "failed"
    assert "no signature from the trusted key someone-else.example/log+" in shown["reason"]
    honest = open_panel(page, live, 2, lang="en", vkey=vkey(live).replace("+", "%2B"))
    assert honest["state"] == "verified"


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda key: key.replace("+", "-", 1), "malformed verifier key"),
        (lambda key: key[:-2] + "AA", "verifier key"),
        # Split on the first two '+' only: the base64 key data may contain '+' too.
        (
            lambda key: "+".join(
                [*key.split("+", 2)[:2], base64.b64encode(b"\x02" + bytes(32)).decode()]
            ),
            "unknown signature algorithm 0x02",
        ),
        (
            lambda key: "+".join([key.split("+", 2)[0], "00000000", key.split("+", 2)[2]]),
            "does not match",
        ),
    ],
)
def test_a_malformed_verifier_key_fails_naming_it(
    page: Any, live: Live, edit: Callable[[str], str], reason: str
) -> None:
    serve_modified(
        page, "/api/v1/ledger/key", lambda body: (edit(body.decode().strip()) + "\n").encode()
    )
    shown = open_panel(page, live, 2, lang="en")
    assert shown["state"] == "failed"
    assert reason in shown["reason"]


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            lambda body: body.replace(b"c2sp.org/tlog-proof@v1", b"c2sp.org/tlog-proof@v2"),
            "first line must be",
        ),
        (lambda body: body.replace(b"index 1\n", b"index 01\n"), "not a decimal number"),
        (lambda body: TlogProof.parse(body).to_text().replace(b"\n\n", b"\n \n", 1), "proof hash"),
        (
            lambda body: b"\n".join(
                line for line in body.split(b"\n") if not line.startswith(b"extra ")
            ),
            "carries no entry",
        ),
        (lambda body: body.replace(b"index 1\n", b"index 2\n"), "the proof is for entry 2"),
    ],
)
def test_a_malformed_proof_fails_naming_it(
    page: Any, live: Live, edit: Callable[[bytes], bytes], reason: str
) -> None:
    serve_modified(page, "/api/v1/ledger/entries/1/proof", edit)
    shown = open_panel(page, live, 1, lang="en")
    assert shown["state"] == "failed"
    assert reason in shown["reason"], shown["reason"]


def test_an_unknown_entry_fails_with_the_servers_answer(page: Any, live: Live) -> None:
    shown = open_panel(page, live, 999, lang="en")
    assert shown["state"] == "failed"
    assert "could not fetch the proof: HTTP 404" in shown["reason"]


def test_an_entry_edited_in_the_database_fails(page: Any, live: Live) -> None:
    # Runs last in this module: it rewrites entry 4, which no other test reads.
    assert open_panel(page, live, 4, lang="en")["state"] == "verified"
    with live.db.transaction() as session:
        body = session.get(LedgerEntry, 4).body  # type: ignore[union-attr]
        session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.seq == 4)
            .values(body=body.replace(b'"n":4', b'"n":5'))
        )
    shown = open_panel(page, live, 4, lang="en")
    assert shown["state"] == "failed"
    assert "entry is not proven at index 4" in shown["reason"]
    assert shown["status_color"] == RED


def python_verdict(proof: bytes, key: str) -> bool:
    try:
        verify_proof(proof, key)
    except VerificationError:
        return False
    return True


def corrupt(proof: bytes, rng: random.Random) -> bytes:
    """One random edit: a byte changed, deleted or duplicated, or a line dropped."""
    data = bytearray(proof)
    position = rng.randrange(len(data))
    choice = rng.randrange(4)
    if choice == 0:
        data[position] = rng.choice(b"AZaz09+/= \n-\xe2\x80\x94x")
    elif choice == 1:
        del data[position]
    elif choice == 2:
        data.insert(position, data[position])
    else:
        lines = bytes(data).split(b"\n")
        del lines[rng.randrange(len(lines))]
        data = bytearray(b"\n".join(lines))
    return bytes(data)


def test_the_browser_verifier_agrees_with_the_python_verifier(page: Any, live: Live) -> None:
    signer = other_signer("parity.example/log")
    key = signer.verifier().to_string()
    rng = random.Random(6)
    cases: list[tuple[bytes, bool]] = []
    for size in range(1, 18):
        store = merkle.MemoryHashStore()
        entries = [json.dumps({"i": i, "size": size}).encode() for i in range(size)]
        for entry in entries:
            store.append(entry)
        checkpoint = note.Checkpoint("parity.example/log", size, store.root())
        signed = note.sign_note(checkpoint.to_text(), signer)
        for index in range(size):
            proof = TlogProof(
                index, tuple(store.inclusion_proof(index)), signed, entries[index]
            ).to_text()
            cases.append((proof, True))
            for _ in range(3):
                damaged = corrupt(proof, rng)
                cases.append((damaged, python_verdict(damaged, key)))
    assert sum(ok for _, ok in cases) >= 153  # every honest proof, at least
    assert sum(not ok for _, ok in cases) > 300  # and hundreds of rejected ones

    # WebCrypto needs a secure context: http://127.0.0.1 is one, a data: URL is not.
    page.goto(f"{live.url}/test/blank")
    page.wait_for_function("window.verifyReady === true")
    verdicts = run_in_browser(page, [proof for proof, _ in cases], key)
    mismatches = [
        (proof, expected, got)
        for (proof, expected), got in zip(cases, verdicts, strict=True)
        if got["ok"] != expected
    ]
    assert not mismatches, mismatches[:3]


def run_in_browser(page: Any, proofs: list[bytes], key: str) -> list[dict[str, Any]]:
    return page.evaluate(
        """async ([proofs, key]) => {
            const out = [];
            for (const b64 of proofs) {
                const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                try {
                    await window.verify.verifyProof(bytes, key);
                    out.push({ok: true, reason: null});
                } catch (error) {
                    if (!(error instanceof window.verify.VerifyError)) throw error;
                    out.push({ok: false, reason: error.message});
                }
            }
            return out;
        }""",
        [[base64.b64encode(proof).decode() for proof in proofs], key],
    )
