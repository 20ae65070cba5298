"""Human pages: Jinja2 templates, static files, and the site's words in zh-CN and English.

Internationalisation, small on purpose and meant for the whole site:

* Every word a person reads lives in ``MESSAGES[language][key]``. ``zh-CN`` is the default
  and must have every key; another language may lack keys, and ``messages`` fills them from
  zh-CN, so a page never shows a key name or a blank. A test checks that the English table
  has no keys zh-CN lacks.
* A page handler picks the language once, ``language = pick_language(request.query_params.get(
  "lang"), request.headers.get("accept-language"))``, and renders with ``lang=language`` and
  ``t=messages(language)``; templates write ``{{ t.verify_title }}`` and
  ``<html lang="{{ lang }}">``. ``?lang=en`` switches; links to other pages carry ``lang`` on.
* Text that scripts fill in (a result known only in the browser) is passed to them as JSON in
  the page, with ``{name}`` placeholders that the script replaces (``verify-panel.js``). No
  string is built by concatenating translated fragments: word order differs between languages.
* Technical reasons from the verifier (which check failed, on which hash) stay in English in
  every language: they are for the auditor who re-runs ``dv verify``, and translating them
  would lose the exact wording that ledger/verify.py shares.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

import jinja2

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "MESSAGES",
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "messages",
    "pick_language",
    "templates",
]

STATIC_DIR: Final = Path(__file__).with_name("static")
TEMPLATES_DIR: Final = Path(__file__).with_name("templates")

DEFAULT_LANGUAGE: Final = "zh-CN"
LANGUAGES: Final = ("zh-CN", "en")

MESSAGES: Final[Mapping[str, Mapping[str, str]]] = {
    "zh-CN": {
        "verify_title": "区块链存证验证",
        "verify_checking": "正在验证…",
        "verify_verified": (
            "已验证：第 {index} 号记录已收录在共 {size} 条记录的账本中，签名密钥 {key}"
        ),
        "verify_failed": "验证失败：这条记录未能通过本机浏览器的核验",
        "verify_reason": "原因：{reason}",
        "verify_explain": (
            "此结果由您的浏览器独立计算：它下载这条记录的包含证明和账本公钥，"
            "自行检查 Ed25519 签名和 RFC 9162 默克尔证明，不依赖服务器的判断。"
        ),
        "verify_noscript": (
            "在浏览器中验证需要启用 JavaScript；也可以下载证明文件，用 dv verify 离线核验。"
        ),
        "verify_download": "下载证明文件",
        "verify_download_hint": "用命令行离线核验：",
    },
    "en": {
        "verify_title": "Ledger verification",
        "verify_checking": "checking…",
        "verify_verified": "verified — entry #{index} is in the log of size {size} signed by {key}",
        "verify_failed": "verification FAILED: this browser's own check did not pass",
        "verify_reason": "Reason: {reason}",
        "verify_explain": (
            "Your browser computed this itself: it fetched the entry's inclusion proof and the "
            "log's public key and checked the Ed25519 signature and the RFC 9162 Merkle proof, "
            "without taking the server's word for it."
        ),
        "verify_noscript": (
            "Checking in the browser needs JavaScript; you can also download the proof file "
            "and check it offline with dv verify."
        ),
        "verify_download": "Download the proof file",
        "verify_download_hint": "Check it offline:",
    },
}


def pick_language(requested: str | None = None, accept_language: str | None = None) -> str:
    """The page language: ``?lang=`` if supported, else the best ``Accept-Language`` match.

    Only the primary subtag is compared (``en-GB`` gets ``en``, ``zh-TW`` gets ``zh-CN``, the
    one Chinese the site has); anything unknown gets the default, zh-CN.
    """
    if requested:
        match = _match(requested)
        if match:
            return match
    if accept_language:
        ranked: list[tuple[float, int, str]] = []
        for position, item in enumerate(accept_language.split(",")):
            tag, _, params = item.strip().partition(";")
            quality = 1.0
            params = params.strip()
            if params.startswith("q="):
                try:
                    quality = float(params[2:])
                except ValueError:
                    continue
            if tag and quality > 0:
                ranked.append((-quality, position, tag.strip()))
        for _, _, tag in sorted(ranked):
            match = _match(tag)
            if match:
                return match
    return DEFAULT_LANGUAGE


def _match(tag: str) -> str | None:
    primary = tag.split("-")[0].lower()
    return next((lang for lang in LANGUAGES if lang.split("-")[0].lower() == primary), None)


@functools.cache
def messages(language: str) -> Mapping[str, str]:
    """The messages of ``language``, with any missing key taken from zh-CN."""
    chosen = MESSAGES.get(language, {})
    return MappingProxyType({**MESSAGES[DEFAULT_LANGUAGE], **chosen})


@functools.cache
def templates() -> jinja2.Environment:
    """The site's template environment: HTML autoescaped, undefined variables are errors."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
