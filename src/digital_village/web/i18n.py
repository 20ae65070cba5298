"""The site's words in zh-CN and English, and the choice of a page's language.

Internationalisation, small on purpose and meant for the whole site (the tables of both
languages stay side by side in this one file, which is why it is long: a translator sees
every key and its zh-CN original together):

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
from types import MappingProxyType
from typing import Final

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "MESSAGES", "messages", "pick_language"]

DEFAULT_LANGUAGE: Final = "zh-CN"
LANGUAGES: Final = ("zh-CN", "en")

MESSAGES: Final[Mapping[str, Mapping[str, str]]] = {
    "zh-CN": {
        "verify_title": "区块链存证验证",
        "verify_checking": "正在验证…",
        "verify_verified": (
            "已验证：第 {index} 号记录已收录在共 {size} 条记录的账本中，账本由 {key} 签名"
        ),
        "verify_failed": "验证失败：这条记录未能通过本机浏览器的核验",
        "verify_reason": "原因：{reason}",
        "verify_explain": (
            "此结果由您的浏览器独立计算：它下载这条记录的包含证明和账本公钥，"
            "自行检查 Ed25519 签名和 RFC 9162 默克尔证明，不依赖服务器的判断。"
        ),
        "verify_noscript": (
            "在浏览器中验证需要启用 JavaScript；也可以下载证明文件，交给可信的人独立核验。"
        ),
        "verify_download": "下载证明文件",
        "verify_download_hint": "任何人都可以用它独立核验这条记录。",
        "verify_waiting": "正在等待账本的下一个检查点…",
        "verify_facts_verified": (
            "已验证：本页 {facts} 项信息出自账本中的 {entries} 条记录，"
            "均已收录在共 {size} 条记录的账本中，账本由 {key} 签名"
        ),
        "verify_facts_failed": (
            "验证失败：本页有 {failed} 项信息未能通过本机浏览器的核验，已在页面上标出"
        ),
        "verify_facts_partial": (
            "部分验证：{passed} 项信息已验证；{unbound} 项记录于账本收录这类信息之前，"
            "无法核验，已在页面上标出"
        ),
        "verify_facts_stale": (
            "验证失败：服务器提供的检查点不是最新的：账本已有 {entries} 条记录，"
            "检查点只包含其中 {size} 条，之后的记录可能被隐藏"
        ),
        "verify_witness_ok": "已见证：{names}（需 {quorum} 个）",
        "verify_witness_missing": "未见证：需 {quorum} 个，仅 {count} 个（{names}）；缺：{missing}",
        "verify_witness_none": "未配置见证方，仅核验账本签名",
        "verify_unwitnessed": "未验证：检查点未经见证",
        "verify_facts_explain": (
            "此结果由您的浏览器独立计算：它一次下载本页信息所在的全部账本记录、它们的包含证明"
            "和账本公钥，自行检查 Ed25519 签名和 RFC 9162 默克尔证明，并逐项比对页面所示内容"
            "与记录是否一致，不依赖服务器的判断。"
        ),
        "verify_facts_download_hint": (
            "页面上每个“账本记录”链接都可下载该记录的证明文件，任何人都可以用它独立核验。"
        ),
        "fact_failed": "未验证",
        "fact_unbound": "无法核验",
        # Pages (web/templates): the consumer page of a lot or bottle, the product page, the
        # parcel (farmer) page and the resolver's error page.
        "site_name": "数字乡村 · 产品溯源",
        "site_footer": "德阳市旌阳区数字乡村：地块登记、田间物联网与区块链账本",
        "lang_switch": "English",
        "colon": "：",
        "privacy_note": "本页不显示个人信息：种植户姓名已部分隐去，不显示电话号码和身份证号。",
        "page_title": "{product} 溯源信息",
        "gtin_label": "商品条码",
        "lot_label": "批次",
        "serial_label": "序号",
        "producer_label": "生产者",
        "quantity_label": "批次数量",
        "produced_label": "生产日期",
        "harvest_label": "采收",
        "area_label": "面积",
        "area_mu": "{area} 亩",
        "pieces_bottle": "瓶",
        "pieces_item": "件",
        "verify_intro": "这些记录是否被篡改过？您的手机会自己检查：",
        "flags_title": "请注意",
        "flag_yield": "产量异常：每亩 {value} 千克，超出这种作物常见的 {low}–{high} 千克。",
        "flag_mass_balance": "加工投入产出比为 {value}，超出常见的 {low}–{high}。",
        "flag_pre_harvest_interval": "施药后 {value} 天即采收，短于农药的安全间隔期 {low} 天。",
        "flag_repeat_harvest": (
            "同一地块 {value} 天前已采收过这种作物，而一季至少需要 {low} 天：这次采收记录可疑。"
        ),
        "flag_other": "{message}",
        "flag_unit_decommissioned": "这件商品已被生产者注销（下架），请谨慎购买。",
        "flag_unit_voided": "这件商品的赋码记录已被声明有误，它可能不是真品。",
        "flag_unit_consumed": "这件商品已被拆分或再加工。",
        "flag_scans_many": (
            "最近 {window} 天内，这个标签在 {days} 天里被 {networks} 个不同网络扫描，"
            "远多于一件商品的正常情况，可能是被复制的标签。"
        ),
        "flag_scans_far": (
            "另外，读者手机报告的两个扫描地点相距约 {km} 公里，只隔 {hours} 小时"
            "（手机报告的位置仅作参考）。"
        ),
        "scans_line": "这个标签已被扫描 {count} 次，首次扫描于 {first}。",
        "geo_ask": "帮助识别假冒标签：分享您的大致位置（约 10 公里精度，仅用于比对扫描地点）。",
        "geo_button": "分享大致位置",
        "geo_thanks": "谢谢，已记录大致位置。",
        "geo_denied": "未获得位置，不影响查看本页。",
        "origin_title": "产地",
        "origin_summary": "{count} 块地，共 {area} 亩",
        "map_caption": "地块图：依据登记的地块边界绘制，数字为地块编码末五位。",
        "parcel_code": "地块编码",
        "more_parcels": "显示全部 {count} 块地",
        "more_entries": "另外 {count} 条",
        "township_label": "乡镇",
        "village_label": "村",
        "group_label": "组",
        "land_use_label": "地类",
        "crop_label": "作物",
        "grower_label": "承包户",
        "operator_label": "经营方",
        "timeline_title": "种植与加工记录",
        "timeline_note": "每条记录都记在账本里，点编号可下载它的证明文件。",
        "timeline_note_corrected": (
            "以下为更正后的记录（更正见下方）；每条都记在账本里，点编号可下载它的证明文件。"
        ),
        "ledger_entry": "账本 #{seq}",
        "corrective_badge": "更正后",
        "parcels_label": "地块",
        "step_planting": "播种",
        "step_fertilizing": "施肥",
        "step_spraying": "施药",
        "step_irrigating": "灌溉",
        "step_harvesting": "收获",
        "step_pressing": "压榨",
        "step_milling": "碾米",
        "step_commissioning": "灌装赋码",
        "step_packing": "装箱",
        "step_inspecting": "检验",
        "step_shipping": "发运",
        "step_receiving": "收货",
        "step_storing": "入库",
        "step_other": "其他",
        "detail_crop": "作物",
        "detail_variety": "品种",
        "detail_fertilizer": "肥料",
        "detail_amount": "用量",
        "detail_water": "灌水量",
        "detail_pesticide": "农药",
        "detail_dose": "用量",
        "detail_phi": "安全间隔期（天）",
        "detail_waited": "施药至采收（天）",
        "detail_harvested": "收获",
        "detail_input": "投入",
        "detail_output": "产出",
        "detail_items": "数量",
        "detail_method": "检测项目",
        "detail_result": "结果",
        "detail_note": "备注",
        "result_conformant": "合格",
        "result_non_conformant": "不合格",
        "corrections_title": "更正记录",
        "correction_text": (
            "{when} 的「{step}」记录于 {declared} 被声明有误（{reason}），已由更正后的记录替代。"
        ),
        "reason_incorrect_data": "数据有误",
        "reason_did_not_occur": "未曾发生",
        "reason_unknown": "未说明原因",
        "conditions_title": "生长环境",
        "conditions_note": (
            "地块 {label}：{first} 至 {last}，{sealed} 天的土壤传感器读数已按日封存进账本，"
            "图表按账本中的封存记录绘制。"
        ),
        "conditions_none": "这些地块没有安装土壤传感器。",
        "chart_legend": "线：日平均值；色带：当日最低至最高",
        "metric_soil_moisture": "土壤湿度",
        "metric_soil_temperature": "土壤温度",
        "certificate_title": "承诺达标合格证",
        "cert_number": "编号",
        "cert_product": "食用农产品名称",
        "cert_quantity": "数量（重量）",
        "cert_origin": "产地",
        "cert_issuer": "生产者盖章或签名",
        "cert_issued": "开具日期",
        "cert_commit": "我承诺对生产销售的食用农产品：",
        "cert_basis": "承诺依据",
        "basis_commissioned_testing": "委托检测",
        "basis_self_testing": "自我检测",
        "basis_internal_quality_control": "内部质量控制",
        "basis_self_commitment": "自我承诺",
        "commitment_no_banned_pesticides_or_veterinary_drugs": "不使用禁用农药兽药",
        "commitment_no_suspended_veterinary_drugs_or_illegal_additives": (
            "不使用停用兽药和非法添加物"
        ),
        "commitment_residues_within_limits": "常规农药兽药残留不超标",
        "certificate_none": "尚未开具合格证。",
        "chain_title": "从田间到成品",
        "data_title": "机器可读数据",
        "data_linkset": "链接集（GS1 linkset）",
        "data_trace": "溯源图（JSON）",
        "data_epcis": "EPCIS 2.0 事件",
        "data_certificates": "合格证（JSON）",
        "product_lots": "批次",
        "product_no_lots": "还没有批次。",
        "category_rapeseed": "油菜籽",
        "category_rapeseed_oil": "菜籽油",
        "category_packaged": "包装产品",
        "category_paddy": "稻谷",
        "category_rice": "大米",
        "category_wheat": "小麦",
        "category_other": "其他",
        "error_title": "无法打开这个链接",
        "error_400": "链接格式有误",
        "error_404": "没有找到",
        "error_406": "无法提供所要求的格式",
        "error_reason": "原因：{reason}",
        "error_hint": "请核对商品标签上的二维码，或联系生产者。",
        "error_explain_400": "这个链接不是有效的商品码：它可能被打错、截断或改动过。",
        "error_explain_404": "系统中没有这件商品（或这个批次、这块地）的记录。",
        "error_explain_406": "无法以所要求的格式提供这项内容。",
        "error_explain_other": "暂时无法打开，请稍后再试。",
        "error_counterfeit_title": "这件商品可能是假冒的",
        "error_counterfeit": (
            "如果这个链接来自商品标签上的二维码，说明标签上的码在溯源系统中查不到："
            "这件商品可能是假冒的。请不要购买或食用，并向生产者或 12315 反映。"
        ),
        "error_type_code": "改为输入标签上的查询码",
        "landing_title": "查一查商品的来历",
        "landing_intro": "扫不了二维码？输入标签上的查询码，或承诺达标合格证上的编号。",
        "landing_label": "查询码或合格证编号",
        "landing_placeholder": "例如 7K3F-2QX9",
        "landing_submit": "查询",
        "landing_not_found": (
            "没有找到查询码或合格证编号为 {code} 的商品。请逐个核对标签上的字符；"
            "如果核对无误仍查不到，这件商品可能是假冒的，请不要购买，并向生产者或 12315 反映。"
        ),
        "landing_malformed": (
            "“{code}” 不是查询码（8 个字母或数字，如 7K3F-2QX9），也不是合格证编号。"
            "请核对后重新输入。"
        ),
        "landing_empty": "请先输入查询码或合格证编号。",
        "farmer_title": "地块 {label}",
        "farmer_area": "{area} 亩",
        "farmer_crop_now": "当前作物",
        "farmer_crop_none": "未登记",
        "farmer_recent": "最近的农事记录",
        "farmer_no_work": "还没有记录。",
        "farmer_retired": "这个地块编码已注销。",
        "farmer_record": "记录今天的农事",
        "farmer_readonly": "只读：用合作社发给您的登录码登录后，可以在这里记录农事。",
        "farmer_token_label": "登录码",
        "farmer_token_save": "登录",
        "farmer_token_forget": "退出",
        "farmer_signed_in": "已登录，可以记录农事。",
        "farmer_work": "农事",
        "form_date": "日期",
        "form_crop": "作物",
        "form_variety": "品种",
        "form_fertilizer": "肥料名称",
        "form_amount_kg": "用量（千克）",
        "form_pesticide": "农药名称",
        "form_dose": "用量",
        "form_dose_unit": "单位",
        "form_phi": "安全间隔期（天）",
        "form_water": "灌水量（毫米）",
        "form_product": "产品",
        "form_lot": "批次号",
        "form_kg": "重量（千克）",
        "form_note": "备注",
        "form_submit": "记录",
        "form_sending": "正在提交…",
        "form_done": "已记录：账本第 {seq} 号 — {what}。",
        "farmer_held": "您家今天承包的地块：",
        "farmer_held_none": "您家今天没有承包的地块，不能记录农事。",
        "farmer_held_members": "合作社成员今天承包的地块共 {count} 块。",
        "farmer_not_held": (
            "这块地（{dkbm}）今天不是您家承包的，不能在这里记录农事。请扫描您家地块的标牌，"
            "或打开上面列出的地块。"
        ),
        "form_recorded_kg": "{kg} 千克",
        "form_failed": "没有记录成功：{reason}",
        "form_proof": "下载证明",
        "labels_title": "打印标签",
        "labels_intro": "为一个批次的每件商品打印二维码标签（A4，每页 3 × 8 张）。",
        "labels_sign_in": "合作社管理员：用登录码登录后下载标签。",
        "farmer_signed_in_manager": "已登录。",
        "labels_serials": "序号（如 0001-0240，留空为批次已登记的全部序号）",
        "labels_start": "首页跳过的标签数",
        "labels_serials_hint": "可以先打印标签再灌装：灌装事件记录这些序号后，扫码即可查看。",
        "labels_download": "下载标签 PDF",
        "labels_making": "正在生成标签…",
        "labels_done": "已生成 {count} 张标签：",
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
            "and have someone you trust check it independently."
        ),
        "verify_download": "Download the proof file",
        "verify_download_hint": "Anyone can check the entry with it, independently.",
        "verify_waiting": "waiting for the log's next checkpoint…",
        "verify_facts_verified": (
            "verified — all {facts} facts on this page come from {entries} ledger entries, "
            "each in the log of size {size} signed by {key}"
        ),
        "verify_facts_failed": (
            "verification FAILED: {failed} facts on this page did not pass this browser's own "
            "check (marked on the page)"
        ),
        "verify_facts_partial": (
            "partly verified: {passed} facts verified; {unbound} were recorded before the "
            "ledger carried such facts and cannot be checked (marked on the page)"
        ),
        "verify_facts_stale": (
            "verification FAILED: the server serves an old checkpoint: the log holds {entries} "
            "entries but the checkpoint covers only {size}, so later entries may be hidden"
        ),
        "verify_witness_ok": (
            "witnessed by {names} ({quorum} required; keys from this site's settings)"
        ),
        "verify_witness_missing": (
            "NOT witnessed: {count} of the {quorum} required witnesses cosigned ({names}); "
            "not cosigned by {missing}"
        ),
        "verify_witness_none": "no witnesses configured: only the log's own signature was checked",
        "verify_unwitnessed": "NOT verified: the checkpoint lacks its witnesses' cosignatures",
        "verify_facts_explain": (
            "Your browser computed this itself: it fetched, in one request, every ledger entry "
            "this page's facts come from with their inclusion proofs, and the log's public key; "
            "it checked the Ed25519 signature and the RFC 9162 Merkle proofs and compared each "
            "fact shown with its entry, without taking the server's word for it."
        ),
        "verify_facts_download_hint": (
            "Each ledger entry link on this page downloads that entry's proof, for anyone to "
            "check independently."
        ),
        "fact_failed": "not verified",
        "fact_unbound": "cannot be checked",
        "site_name": "Digital Village · product trace",
        "site_footer": (
            "Jingyang district, Deyang: land registry, field sensors and a verifiable ledger"
        ),
        "lang_switch": "中文",
        "colon": ": ",
        "privacy_note": (
            "No personal data on this page: growers' names are masked, no phone or ID numbers."
        ),
        "page_title": "{product}: where it comes from",
        "gtin_label": "GTIN",
        "lot_label": "Lot",
        "serial_label": "Serial",
        "producer_label": "Producer",
        "quantity_label": "Lot size",
        "produced_label": "Made on",
        "harvest_label": "Harvested",
        "area_label": "Area",
        "area_mu": "{area} mu",
        "pieces_bottle": "bottles",
        "pieces_item": "items",
        "verify_intro": "Have these records been tampered with? Your phone checks for itself:",
        "flags_title": "Please note",
        "flag_yield": "Unusual yield: {value} kg per mu, outside the usual {low}–{high} kg.",
        "flag_mass_balance": "The processing ratio {value} is outside the usual {low}–{high}.",
        "flag_pre_harvest_interval": (
            "Harvested {value} days after spraying, sooner than the pesticide's pre-harvest "
            "interval of {low} days."
        ),
        "flag_repeat_harvest": (
            "The same field was harvested of this crop {value} days before, but one season "
            "takes at least {low} days: this harvest is doubtful."
        ),
        "flag_other": "{message}",
        "flag_unit_decommissioned": "The producer has withdrawn this item from sale.",
        "flag_unit_voided": (
            "The record of this item was declared erroneous: it may not be genuine."
        ),
        "flag_unit_consumed": "This item was split up or processed further.",
        "flag_scans_many": (
            "In the last {window} days this label was scanned from {networks} different "
            "networks on {days} different days, far more than one item normally is: it may be "
            "a copied label."
        ),
        "flag_scans_far": (
            "Readers' phones also reported two places about {km} km apart within {hours} hours "
            "(a location a phone reports is a hint, not proof)."
        ),
        "scans_line": "Scans of this label so far: {count}, the first on {first}.",
        "geo_ask": (
            "Help spot copied labels: share your approximate location (to about 10 km, used only "
            "to compare where this label is scanned)."
        ),
        "geo_button": "Share approximate location",
        "geo_thanks": "Thank you, your approximate location was recorded.",
        "geo_denied": "No location shared; the page works the same.",
        "origin_title": "Origin",
        "origin_summary": "{count} parcels, {area} mu in all",
        "map_caption": (
            "Drawn from the registered parcel boundaries; numbers are the last five digits of "
            "each parcel code."
        ),
        "parcel_code": "Parcel code",
        "more_parcels": "Show all {count} parcels",
        "more_entries": "{count} more",
        "township_label": "Township",
        "village_label": "Village",
        "group_label": "Group",
        "land_use_label": "Land use",
        "crop_label": "Crop",
        "grower_label": "Grower",
        "operator_label": "Operated by",
        "timeline_title": "How it was grown and made",
        "timeline_note": ("Every entry is in the ledger — tap its number to download its proof."),
        "timeline_note_corrected": (
            "The corrected record (the corrections are listed below); every entry is in the "
            "ledger — tap its number to download its proof."
        ),
        "ledger_entry": "ledger #{seq}",
        "corrective_badge": "corrected",
        "parcels_label": "Parcel",
        "step_planting": "Sowing",
        "step_fertilizing": "Fertilizing",
        "step_spraying": "Spraying",
        "step_irrigating": "Irrigating",
        "step_harvesting": "Harvest",
        "step_pressing": "Pressing",
        "step_milling": "Milling",
        "step_commissioning": "Bottling and labelling",
        "step_packing": "Packing",
        "step_inspecting": "Inspection",
        "step_shipping": "Shipping",
        "step_receiving": "Receiving",
        "step_storing": "Storing",
        "step_other": "Other",
        "detail_crop": "Crop",
        "detail_variety": "Variety",
        "detail_fertilizer": "Fertilizer",
        "detail_amount": "Amount",
        "detail_water": "Water",
        "detail_pesticide": "Pesticide",
        "detail_dose": "Dose",
        "detail_phi": "Pre-harvest interval (days)",
        "detail_waited": "Days from spraying to harvest",
        "detail_harvested": "Harvested",
        "detail_input": "In",
        "detail_output": "Out",
        "detail_items": "Items",
        "detail_method": "Test",
        "detail_result": "Result",
        "detail_note": "Note",
        "result_conformant": "passed",
        "result_non_conformant": "failed",
        "corrections_title": "Corrections",
        "correction_text": (
            "The {step} record of {when} was declared erroneous on {declared} ({reason}) and "
            "replaced by the corrected record."
        ),
        "reason_incorrect_data": "incorrect data",
        "reason_did_not_occur": "it did not happen",
        "reason_unknown": "no reason given",
        "conditions_title": "Growing conditions",
        "conditions_note": (
            "Parcel {label}: {first} to {last}, soil sensor readings of {sealed} days sealed "
            "into the ledger day by day; the charts are drawn from those seals."
        ),
        "conditions_none": "No soil sensors were installed on these parcels.",
        "chart_legend": "line: daily mean; band: daily lowest to highest",
        "metric_soil_moisture": "Soil moisture",
        "metric_soil_temperature": "Soil temperature",
        "certificate_title": "Compliance certificate (承诺达标合格证)",
        "cert_number": "Number",
        "cert_product": "Product",
        "cert_quantity": "Quantity",
        "cert_origin": "Origin",
        "cert_issuer": "Producer",
        "cert_issued": "Issued on",
        "cert_commit": "For the produce it sells, the producer promises:",
        "cert_basis": "Based on",
        "basis_commissioned_testing": "commissioned testing",
        "basis_self_testing": "its own testing",
        "basis_internal_quality_control": "internal quality control",
        "basis_self_commitment": "its own commitment",
        "commitment_no_banned_pesticides_or_veterinary_drugs": (
            "no banned pesticides or veterinary drugs"
        ),
        "commitment_no_suspended_veterinary_drugs_or_illegal_additives": (
            "no suspended veterinary drugs or illegal additives"
        ),
        "commitment_residues_within_limits": "pesticide and drug residues within the limits",
        "certificate_none": "No certificate has been issued yet.",
        "chain_title": "From field to product",
        "data_title": "Machine-readable data",
        "data_linkset": "Linkset (GS1)",
        "data_trace": "Trace graph (JSON)",
        "data_epcis": "EPCIS 2.0 events",
        "data_certificates": "Certificates (JSON)",
        "product_lots": "Lots",
        "product_no_lots": "No lots yet.",
        "category_rapeseed": "rapeseed",
        "category_rapeseed_oil": "rapeseed oil",
        "category_packaged": "packaged product",
        "category_paddy": "paddy rice",
        "category_rice": "rice",
        "category_wheat": "wheat",
        "category_other": "other",
        "error_title": "This link cannot be opened",
        "error_400": "The link is malformed",
        "error_404": "Not found",
        "error_406": "That format is not available",
        "error_reason": "Reason: {reason}",
        "error_hint": "Please check the QR code on the label, or ask the producer.",
        "error_explain_400": (
            "This link is not a valid product code: it may have been mistyped, cut short or "
            "altered."
        ),
        "error_explain_404": "There is no record of this item (or lot, or field).",
        "error_explain_406": "This cannot be given in the format asked for.",
        "error_explain_other": "This cannot be opened now; please try again later.",
        "error_counterfeit_title": "This item may be counterfeit",
        "error_counterfeit": (
            "If this link came from the QR code on a product's label, the code on that label "
            "is not in the trace system: the item may be counterfeit. Do not buy or eat it, "
            "and tell the producer or the 12315 consumer hotline."
        ),
        "error_type_code": "Type the label's check code instead",
        "landing_title": "Where does it come from?",
        "landing_intro": (
            "QR code will not scan? Type the check code (查询码) printed on the label, or the "
            "number of its 承诺达标合格证 certificate."
        ),
        "landing_label": "Check code or certificate number",
        "landing_placeholder": "e.g. 7K3F-2QX9",
        "landing_submit": "Look up",
        "landing_not_found": (
            "No item has the check code or certificate number {code}. Check each character "
            "against the label; if it is right and still not found, the item may be "
            "counterfeit: do not buy it, and tell the producer or the 12315 consumer hotline."
        ),
        "landing_malformed": (
            "“{code}” is neither a check code (8 letters or digits, like 7K3F-2QX9) nor a "
            "certificate number. Please check it and type it again."
        ),
        "landing_empty": "Please type a check code or a certificate number first.",
        "farmer_title": "Parcel {label}",
        "farmer_area": "{area} mu",
        "farmer_crop_now": "Crop now",
        "farmer_crop_none": "not recorded",
        "farmer_recent": "Recent field work",
        "farmer_no_work": "Nothing recorded yet.",
        "farmer_retired": "This parcel code was retired.",
        "farmer_record": "Record today's work",
        "farmer_readonly": (
            "Read only: sign in with the code your cooperative gave you to record field work here."
        ),
        "farmer_token_label": "Sign-in code",
        "farmer_token_save": "Sign in",
        "farmer_token_forget": "Sign out",
        "farmer_signed_in": "Signed in: you can record field work.",
        "farmer_work": "Work",
        "form_date": "Date",
        "form_crop": "Crop",
        "form_variety": "Variety",
        "form_fertilizer": "Fertilizer",
        "form_amount_kg": "Amount (kg)",
        "form_pesticide": "Pesticide",
        "form_dose": "Dose",
        "form_dose_unit": "Unit",
        "form_phi": "Pre-harvest interval (days)",
        "form_water": "Water (mm)",
        "form_product": "Product",
        "form_lot": "Lot number",
        "form_kg": "Weight (kg)",
        "form_note": "Note",
        "form_submit": "Record",
        "form_sending": "Sending…",
        "form_done": "Recorded: ledger entry #{seq} — {what}.",
        "farmer_held": "Parcels your household holds today:",
        "farmer_held_none": "Your household holds no parcel today, so no work can be recorded.",
        "farmer_held_members": "The cooperative's members hold {count} parcels today.",
        "farmer_not_held": (
            "This parcel ({dkbm}) is not your household's today, so work cannot be recorded "
            "on it here. Scan the sign of one of your parcels, or open one listed above."
        ),
        "form_recorded_kg": "{kg} kg",
        "form_failed": "Not recorded: {reason}",
        "form_proof": "Download the proof",
        "labels_title": "Print labels",
        "labels_intro": "QR code labels for every item of a lot (A4, 3 × 8 a sheet).",
        "labels_sign_in": "Cooperative managers: sign in with your code to download labels.",
        "farmer_signed_in_manager": "Signed in.",
        "labels_serials": "Serials (e.g. 0001-0240; empty: all the lot's recorded serials)",
        "labels_start": "Labels used on sheet 1",
        "labels_serials_hint": (
            "Labels may be printed before bottling: once the bottling event records these "
            "serials, scanning them opens their pages."
        ),
        "labels_download": "Download the label PDF",
        "labels_making": "Making the labels…",
        "labels_done": "{count} labels made:",
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
