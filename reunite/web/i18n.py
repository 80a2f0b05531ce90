"""Simplified Chinese and English for the staff pages: words, dates and error messages.

The language comes from the ``lang`` cookie (set by the switch on every page), else from the
browser's ``Accept-Language``, else English. Messages are looked up by key; a key missing from
one language is a bug that ``tests/web/test_i18n.py`` catches.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from typing import Any

from reunite.errors import ReuniteError
from reunite.web.form_words import FORM_MESSAGES

LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "lang"

_EN_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "app": "reunite",
        "tagline": "Face matching to reunite lost people with their families",
        "nav.review": "Review queue",
        "nav.intake": "New intake",
        "nav.search": "Search by photo",
        "nav.sign_out": "Sign out",
        "nav.password": "Change password",
        "nav.users": "Accounts",
        "account.title": "Change my password",
        "account.current": "Current password",
        "account.new": "New password",
        "account.again": "New password again",
        "account.submit": "Change password",
        "account.help": "Your other sessions, on every device, end when the password changes.",
        "account.wrong_current": "That is not your current password.",
        "account.mismatch": "The two new passwords differ.",
        "account.password_policy": "{detail}",
        "account.password_changed": "Your password is changed; your other sessions have ended.",
        "users.title": "Accounts",
        "users.username": "User",
        "users.role": "Role",
        "users.state": "State",
        "users.enabled": "Enabled",
        "users.disabled": "Disabled",
        "users.enable": "Enable",
        "users.disable": "Disable",
        "users.set_role": "Set role",
        "users.new_password": "New password",
        "users.reset": "Reset password",
        "users.enabled_done": "{username} is enabled.",
        "users.disabled_done": "{username} is disabled; their sessions have ended.",
        "users.password_done": "{username}'s password is reset; their sessions have ended.",
        "users.role_done": "{username}'s role is changed.",
        "role.staff": "Staff",
        "role.admin": "Admin",
        "switch": "中文",
        "signin.title": "Sign in",
        "signin.username": "Username",
        "signin.password": "Password",
        "signin.submit": "Sign in",
        "queue.title": "Candidates to review",
        "queue.empty": "No candidates are waiting for review.",
        "queue.closest": "Closest first",
        "queue.newest": "Newest first",
        "queue.more": "More candidates →",
        "queue.total": "{total} waiting",
        "queue.help": "The service proposes; you decide. A family visit or DNA still confirms.",
        "candidate.distance": "Distance",
        "candidate.similarity": "Chance this is the person (estimated)",
        "candidate.note": "Note (optional)",
        "candidate.reason": "Reason",
        "candidate.confirm": "Confirm match",
        "candidate.reject": "Not the same person",
        "candidate.confirm_check": "Confirm that found case {found} and missing case {missing} "
        "are the same person? Both cases will be marked matched.",
        "candidate.confirm_flags": "These facts do not fit; check them first:",
        "candidate.confirm_final": "Yes, confirm this match",
        "candidate.reopen": "Reopen",
        "candidate.found": "Found person",
        "candidate.missing": "Missing person",
        "candidate.history": "Decisions",
        "explanation.rank": "Rank {rank} of its search",
        "explanation.rank_unknown": "Rank in its search unknown",
        "explanation.distance": "distance",
        "explanation.score": "stands out by {score} σ",
        "explanation.score_unknown": "how far it stands out: unknown",
        "flag.unnamed": "Flag: {code}",
        "status.pending": "Pending",
        "status.confirmed": "Confirmed",
        "status.rejected": "Rejected",
        "status.open": "Open",
        "status.matched": "Matched",
        "status.closed": "Closed",
        "kind.missing": "Missing",
        "kind.found": "Found",
        "kind.all": "Both",
        "sex.female": "Female",
        "sex.male": "Male",
        "sex.unknown": "Unknown",
        "field.name": "Name",
        "field.sex": "Sex",
        "field.birth_date": "Birth date",
        "field.birth_years": "Born (estimate)",
        "field.age_min": "Apparent age from",
        "field.age_max": "to",
        "field.date_missing": "Missing since",
        "field.date_found": "Date found",
        "field.taken_on": "Photos taken on",
        "hint.taken_on": (
            "The day these photos were taken, as YYYY-MM-DD (e.g. 2024-03-05). Left empty, they "
            "count as taken on the date found (a missing person's undated photo counts as taken "
            "on the date missing). With a birth year, it gives the age in each photo."
        ),
        "field.place": "Place",
        "field.description": "Description",
        "field.contact": "Contact",
        "field.agency": "Agency",
        "field.external_ref": "Agency case number",
        "field.photos": "Photos (one face each)",
        "field.status": "Status",
        "field.kind": "Kind",
        "age.years": "{low}–{high} years",
        "age.at": "age {age}",
        "flag.sex_differs": "Sex differs ({found} found, {missing} missing)",
        "flag.age_implausible": (
            "Age implausible: on {on} the missing person was {missing_low}–{missing_high}, "
            "the found person looks {apparent_low}–{apparent_high}"
        ),
        "flag.found_before_missing": (
            "Found on {date_found}, {days} days before reported missing on {date_missing}"
        ),
        "flag.photo_age_gap": (
            "The photos are about {gap_years} years apart in age ({missing_low}–{missing_high} "
            "in the missing person's photo, {found_low}–{found_high} in the found person's): "
            "face matching is much less reliable across such a gap"
        ),
        "flag.face_chosen_automatically": (
            "The {side} photo shows several faces; the import chose {choice}: check that it is "
            "the right person"
        ),
        "flag.side.found": "found person's",
        "flag.side.missing": "missing person's",
        "flag.choice.largest": "the largest",
        "flag.choice.central": "the one nearest the centre",
        "flag.no_longer_proposed": (
            "No longer proposed: since {since}, the current matching rules would not propose "
            "this pair (kept for review)"
        ),
        "intake.title": "New intake: a person found",
        "intake.help": "Enter what is known; leave the rest empty. Candidates appear at once.",
        "intake.submit": "Save and find candidates",
        "search.title": "Search by photo",
        "search.help": "Nothing is stored except a record that you searched.",
        "search.photo": "Photo",
        "search.kind": "Search among",
        "search.submit": "Search",
        "search.face": "Face {number}",
        "search.none": "No case within tolerance. This is not proof that the person is absent.",
        "case.title.missing": "Missing case {id}",
        "case.title.found": "Found case {id}",
        "case.photos": "Photos",
        "case.candidates": "Candidates",
        "case.none": "No candidates yet.",
        "case.created": "Saved. {count} candidate(s) found.",
        "decision.saved": "Candidate {id} (found case {found} ↔ missing case {missing}): {status}.",
        "undo.button": "Undo",
        "undo.window_s": "You can undo this within {seconds} seconds.",
        "undo.window_min": "You can undo this within {minutes} minutes.",
        "undo.expired": "The time to undo has passed; an admin can reopen the candidate.",
        "undo.done": "Undone: candidate {id} (found case {found} ↔ missing case {missing}) is "
        "{status} again.",
        "error.undo_refused": "This decision cannot be undone: {detail}",
        "error.undo_refused.off": "Undo is turned off here. An admin can reopen the candidate.",
        "error.undo_refused.not_undoable": "Only a confirm or a reject can be undone. An admin "
        "can reopen the candidate.",
        "error.undo_refused.not_yours": "Only the person who made this decision can undo it.",
        "error.undo_refused.window_passed": "Too late to undo: the {seconds} seconds have "
        "passed. An admin can reopen the candidate.",
        "error.undo_refused.later_decision": "This candidate has had another decision since; "
        "reload the page.",
        "error.undo_refused.case_changed": "Case {case} has changed since, so the decision can "
        "no longer be undone. An admin can reopen the candidate.",
        "keys.hint": "Keyboard: c confirm · r reject · n next card · ? all shortcuts",
        "keys.show": "Keyboard shortcuts",
        "keys.title": "Keyboard shortcuts (not while typing in a field)",
        "keys.c": "open the confirm step of the current card; then Enter confirms",
        "keys.r": "reject the current card (not the same person)",
        "keys.n": "next card",
        "keys.k": "previous card",
        "keys.help": "show or hide this list",
        "keys.esc": "close the confirm step or this list",
        "keys.on": "Use these single-key shortcuts (kept in this browser)",
        "candidate.current": "Current card",
        "candidate.blocked": "Case {case} is already matched by another confirmed candidate; "
        "an admin must reopen that one first.",
        "unknown": "—",
        # candidate cards: references, photos, the lightbox, who decided (reunite/web/cards.py)
        "card.reference_none": "no agency reference",
        "card.photo_dates": "Photos taken",
        "card.photo_count": "{count} photo(s)",
        "photo.date_unknown": "date unknown",
        "photo.taken": "taken {date}",
        "photo.open": "Photo {number} of {total} of case {case}, {date}: open large",
        "photo.whole": "Photo {number} of {total} of case {case}, {date}, the faces outlined",
        "lightbox.title": "Photos of case {case}",
        "lightbox.help": "The yellow box is the face compared; arrow keys move between photos, "
        "Esc closes.",
        "lightbox.help_case": "The yellow boxes are the case's faces; arrow keys move between "
        "photos, Esc closes.",
        "lightbox.previous": "Previous photo",
        "lightbox.next": "Next photo",
        "lightbox.close": "Close",
        "actor.key": "API key “{label}” ({prefix})",
        "actor.key_unlabelled": "API key {prefix}",
        "actor.cli": "the command line",
        "actor.system": "the system",
        "error.form": "Please correct the fields marked below.",
        "error.photo_required": "Choose at least one photo.",
        "error.bad_age": "{field}: enter a whole number of years, 0 to 120.",
        "error.bad_date": "{field}: {value} is not a date between 1900 and today.",
        "error.field": "{field}: please check this field.",
        "error.note_too_long": "The note is too long (at most 2000 characters).",
        "error.stale_form": "This form is stale; reload the page and try again.",
        "error.not_ready": "The service is starting; try again in a moment.",
        "error.rate_limited": "Too many requests; wait a moment and try again.",
        "error.too_many_photos": "Choose at most {limit} photos at a time.",
        "error.no_face_found": "No face was found in this photo. Use a clear, front-facing photo.",
        "error.multiple_faces": (
            "This photo shows {count} faces. Crop it to the one person and upload it again."
        ),
        "error.unsupported_image": "This file is not a JPEG, PNG or WebP photo.",
        "error.unreadable_image": "This photo is damaged or incomplete and cannot be read.",
        "error.image_too_small": "This image is too small to show a face.",
        "error.image_too_large": "This photo is too large. Send a smaller copy.",
        "error.not_authenticated": "Wrong username or password.",
        "error.forbidden": "You are not allowed to do this.",
        "error.conflict": "This cannot be done now: {detail}",
        "error.not_found": "Not found.",
        "error.page_not_found": "There is no page at this address.",
        "error.method_not_allowed": "This page cannot be used that way.",
        "error.http": "This request could not be answered (HTTP {status}).",
        "error.unexpected": "Something went wrong on our side; it was logged. Try again.",
        "error.request_too_large": "What was sent is too large (over {mb} MB). Send less at once.",
        "error.back": "Back to the review queue",
        "error.status": "Error {status}",
        "error.invalid_field": "Please check the fields: {detail}",
        "nav.account": "My account",
        "account.page_title": "My account",
        "account.display_name": "Display name",
        "account.display_name_help": (
            "How the pages name you: in the header and in decision histories. Your username "
            "stays {username}."
        ),
        "account.display_name_submit": "Save name",
        "account.display_name_done": "Your display name is saved.",
        "users.display_name": "Display name",
        "users.set_display_name": "Set name",
        "users.display_name_done": "{username}'s display name is changed.",
        "error.invalid_field.password_too_short": (
            "A password needs at least {min_length} characters."
        ),
        "error.invalid_field.password_common": (
            "That password is one of the most common ones; choose another."
        ),
        "error.invalid_field.display_name_length": (
            "A display name is 1 to {max_length} characters."
        ),
        "error.invalid_field.display_name_control": (
            "A display name cannot hold control characters (line breaks, tabs and the like)."
        ),
        "error.conflict.last_admin": (
            "This is the last enabled admin account; make another account an admin first, so "
            "that someone can still manage accounts."
        ),
    },
    "zh-CN": {
        "app": "团圆",
        "tagline": "人脸比对，帮助走失者与家人团聚",
        "nav.review": "待审核",
        "nav.intake": "新登记",
        "nav.search": "以照片查找",
        "nav.sign_out": "退出",
        "nav.password": "修改密码",
        "nav.users": "账户管理",
        "account.title": "修改我的密码",
        "account.current": "当前密码",
        "account.new": "新密码",
        "account.again": "再次输入新密码",
        "account.submit": "修改密码",
        "account.help": "密码修改后，您在其他设备上的登录都将失效。",
        "account.wrong_current": "当前密码不正确。",
        "account.mismatch": "两次输入的新密码不一致。",
        "account.password_policy": "新密码不符合要求：{detail}",
        "account.password_changed": "密码已修改，您的其他登录已失效。",
        "users.title": "账户管理",
        "users.username": "用户",
        "users.role": "角色",
        "users.state": "状态",
        "users.enabled": "已启用",
        "users.disabled": "已停用",
        "users.enable": "启用",
        "users.disable": "停用",
        "users.set_role": "设置角色",
        "users.new_password": "新密码",
        "users.reset": "重置密码",
        "users.enabled_done": "已启用 {username}。",
        "users.disabled_done": "已停用 {username}，其登录已失效。",
        "users.password_done": "已重置 {username} 的密码，其登录已失效。",
        "users.role_done": "已修改 {username} 的角色。",
        "role.staff": "工作人员",
        "role.admin": "管理员",
        "switch": "English",
        "signin.title": "登录",
        "signin.username": "用户名",
        "signin.password": "密码",
        "signin.submit": "登录",
        "queue.title": "待审核的候选匹配",
        "queue.empty": "目前没有待审核的候选匹配。",
        "queue.closest": "最相近优先",
        "queue.newest": "最新优先",
        "queue.more": "更多候选 →",
        "queue.total": "共 {total} 条待审核",
        "queue.help": "系统只提出候选，由您决定。仍需家属见面或 DNA 确认。",
        "candidate.distance": "距离",
        "candidate.similarity": "是此人的可能性（估计）",
        "candidate.note": "备注（可选）",
        "candidate.reason": "原因",
        "candidate.confirm": "确认匹配",
        "candidate.reject": "不是同一人",
        "candidate.confirm_check": "确认受助案件 {found} 与走失案件 {missing} 是同一人？"
        "两个案件都将标为已匹配。",
        "candidate.confirm_flags": "以下情况不一致，请先核对：",
        "candidate.confirm_final": "是，确认此匹配",
        "candidate.reopen": "重新审核",
        "candidate.found": "受助人员",
        "candidate.missing": "走失人员",
        "candidate.history": "审核记录",
        "explanation.rank": "本次搜索第 {rank} 位",
        "explanation.rank_unknown": "搜索排名未知",
        "explanation.distance": "距离",
        "explanation.score": "突出程度 {score} σ",
        "explanation.score_unknown": "突出程度未知",
        "flag.unnamed": "提示：{code}",
        "status.pending": "待审核",
        "status.confirmed": "已确认",
        "status.rejected": "已排除",
        "status.open": "进行中",
        "status.matched": "已匹配",
        "status.closed": "已结案",
        "kind.missing": "走失",
        "kind.found": "受助",
        "kind.all": "全部",
        "sex.female": "女",
        "sex.male": "男",
        "sex.unknown": "不详",
        "field.name": "姓名",
        "field.sex": "性别",
        "field.birth_date": "出生日期",
        "field.birth_years": "出生年份（估计）",
        "field.age_min": "估计年龄：从",
        "field.age_max": "到",
        "field.date_missing": "走失日期",
        "field.date_found": "发现日期",
        "field.taken_on": "拍摄日期",
        "hint.taken_on": (
            "这些照片的拍摄日期，格式为 YYYY-MM-DD（例如 2024-03-05）。留空则视为在发现当天拍摄"
            "（走失者未注明日期的照片视为在走失当天拍摄）。结合出生年份可推算每张照片中的年龄。"
        ),
        "field.place": "地点",
        "field.description": "特征描述",
        "field.contact": "联系方式",
        "field.agency": "机构",
        "field.external_ref": "机构案件编号",
        "field.photos": "照片（每张一人）",
        "field.status": "状态",
        "field.kind": "类型",
        "age.years": "{low}–{high} 岁",
        "age.at": "{age} 岁",
        "flag.sex_differs": "性别不符（受助：{found}，走失：{missing}）",
        "flag.age_implausible": (
            "年龄不符：{on} 时走失人员应为 {missing_low}–{missing_high} 岁，"
            "受助人员看起来 {apparent_low}–{apparent_high} 岁"
        ),
        "flag.found_before_missing": (
            "发现日期 {date_found} 比报失日期 {date_missing} 早 {days} 天"
        ),
        "flag.photo_age_gap": (
            "两张照片中的年龄相差约 {gap_years} 岁"
            "（走失人员照片中 {missing_low}–{missing_high} 岁，"
            "受助人员照片中 {found_low}–{found_high} 岁）："
            "跨越这样的年龄差，人脸比对可靠性大大降低"
        ),
        "flag.face_chosen_automatically": (
            "{side}的照片中有多张人脸，导入时自动选用了{choice}：请核对是否选对了人"
        ),
        "flag.side.found": "受助人员",
        "flag.side.missing": "走失人员",
        "flag.choice.largest": "最大的人脸",
        "flag.choice.central": "最靠近画面中心的人脸",
        "flag.no_longer_proposed": (
            "已不再推荐：自 {since} 起，按当前比对规则不会推荐这一对（保留待审核）"
        ),
        "intake.title": "新登记：受助人员",
        "intake.help": "填写已知信息，其余留空。提交后立即显示候选匹配。",
        "intake.submit": "保存并查找候选",
        "search.title": "以照片查找",
        "search.help": "除查询记录外，不保存任何内容。",
        "search.photo": "照片",
        "search.kind": "查找范围",
        "search.submit": "查找",
        "search.face": "第 {number} 张人脸",
        "search.none": "没有在容差范围内的案件。这不能证明此人不在系统中。",
        "case.title.missing": "走失案件 {id}",
        "case.title.found": "受助案件 {id}",
        "case.photos": "照片",
        "case.candidates": "候选匹配",
        "case.none": "暂无候选匹配。",
        "case.created": "已保存。找到 {count} 个候选匹配。",
        "decision.saved": "候选匹配 {id}（受助案件 {found} ↔ 走失案件 {missing}）：{status}。",
        "undo.button": "撤销",
        "undo.window_s": "{seconds} 秒内可以撤销。",
        "undo.window_min": "{minutes} 分钟内可以撤销。",
        "undo.expired": "撤销时间已过；如需更改，请由管理员重新审核。",
        "undo.done": "已撤销：候选匹配 {id}（受助案件 {found} ↔ 走失案件 {missing}）"
        "恢复为{status}。",
        "error.undo_refused": "此决定无法撤销：{detail}",
        "error.undo_refused.off": "此处未开启撤销功能。如需更改，请由管理员重新审核。",
        "error.undo_refused.not_undoable": "只能撤销“确认”或“排除”。如需更改，请由管理员重新审核。",
        "error.undo_refused.not_yours": "只有做出此决定的人才能撤销。",
        "error.undo_refused.window_passed": "已超过 {seconds} 秒，无法撤销。"
        "如需更改，请由管理员重新审核。",
        "error.undo_refused.later_decision": "此候选匹配之后已有新的决定，请刷新页面。",
        "error.undo_refused.case_changed": "案件 {case} 之后已有变更，无法撤销。"
        "如需更改，请由管理员重新审核。",
        "keys.hint": "键盘：c 确认 · r 排除 · n 下一条 · ? 全部快捷键",
        "keys.show": "键盘快捷键",
        "keys.title": "键盘快捷键（在输入框中打字时不起作用）",
        "keys.c": "打开当前卡片的确认步骤；再按 Enter 确认",
        "keys.r": "排除当前卡片（不是同一人）",
        "keys.n": "下一条",
        "keys.k": "上一条",
        "keys.help": "显示或隐藏此列表",
        "keys.esc": "关闭确认步骤或此列表",
        "keys.on": "启用这些单键快捷键（此浏览器中保存）",
        "candidate.current": "当前卡片",
        "candidate.blocked": "案件 {case} 已由另一条已确认的候选匹配认定；"
        "须由管理员先将那一条重新审核。",
        "unknown": "—",
        # candidate cards: references, photos, the lightbox, who decided (reunite/web/cards.py)
        "card.reference_none": "无机构编号",
        "card.photo_dates": "照片拍摄日期",
        "card.photo_count": "{count} 张照片",
        "photo.date_unknown": "日期不详",
        "photo.taken": "拍摄于 {date}",
        "photo.open": "案件 {case} 第 {number} 张照片（共 {total} 张），{date}：放大查看",
        "photo.whole": "案件 {case} 第 {number} 张照片（共 {total} 张），{date}，人脸已框出",
        "lightbox.title": "案件 {case} 的照片",
        "lightbox.help": "黄色框为比对的人脸；方向键切换照片，Esc 键关闭。",
        "lightbox.help_case": "黄色框为本案件的人脸；方向键切换照片，Esc 键关闭。",
        "lightbox.previous": "上一张",
        "lightbox.next": "下一张",
        "lightbox.close": "关闭",
        "actor.key": "API 密钥“{label}”（{prefix}）",
        "actor.key_unlabelled": "API 密钥 {prefix}",
        "actor.cli": "命令行",
        "actor.system": "系统",
        "error.form": "请更正下方标出的内容。",
        "error.photo_required": "请至少选择一张照片。",
        "error.bad_age": "{field}：请填写 0 到 120 之间的整数岁数。",
        "error.bad_date": "{field}：{value} 不是 1900 年到今天之间的日期。",
        "error.field": "{field}：填写有误",
        "error.note_too_long": "备注太长（最多 2000 字）。",
        "error.stale_form": "此表单已过期，请刷新页面后重试。",
        "error.not_ready": "系统正在启动，请稍后再试。",
        "error.rate_limited": "请求过于频繁，请稍后再试。",
        "error.too_many_photos": "每次最多选择 {limit} 张照片。",
        "error.no_face_found": "照片中没有找到人脸。请使用清晰的正面照片。",
        "error.multiple_faces": "这张照片中有 {count} 张人脸。请裁剪为一人后重新上传。",
        "error.unsupported_image": "此文件不是 JPEG、PNG 或 WebP 照片。",
        "error.unreadable_image": "照片已损坏或不完整，无法读取。",
        "error.image_too_small": "图片太小，无法显示人脸。",
        "error.image_too_large": "照片太大。请上传较小的版本。",
        "error.not_authenticated": "用户名或密码错误。",
        "error.page_not_found": "此地址没有页面。",
        "error.method_not_allowed": "此页面不能这样使用。",
        "error.http": "无法处理此请求（HTTP {status}）。",
        "error.unexpected": "系统出错，已记录。请重试。",
        "error.request_too_large": "提交的内容太大（超过 {mb} MB）。请分几次提交。",
        "error.back": "返回审核队列",
        "error.status": "错误 {status}",
        "error.forbidden": "您没有权限执行此操作。",
        "error.conflict": "目前无法执行：{detail}",
        "error.not_found": "未找到。",
        "error.invalid_field": "请检查填写内容：{detail}",
        "nav.account": "我的账户",
        "account.page_title": "我的账户",
        "account.display_name": "显示名称",
        "account.display_name_help": (
            "页面上（页头和审核记录中）显示的您的名字。您的用户名仍为 {username}。"
        ),
        "account.display_name_submit": "保存名称",
        "account.display_name_done": "显示名称已保存。",
        "users.display_name": "显示名称",
        "users.set_display_name": "设置名称",
        "users.display_name_done": "已修改 {username} 的显示名称。",
        "error.invalid_field.password_too_short": "密码至少需要 {min_length} 个字符。",
        "error.invalid_field.password_common": "这是最常见的密码之一，请另选一个。",
        "error.invalid_field.display_name_length": "显示名称须为 1 到 {max_length} 个字符。",
        "error.invalid_field.display_name_control": (
            "显示名称不能包含控制字符（如换行符、制表符等）。"
        ),
        "error.conflict.last_admin": (
            "这是最后一个启用的管理员账户。请先将另一个账户设为管理员，以便仍有人能管理账户。"
        ),
    },
}
for _lang, _words in FORM_MESSAGES.items():  # the forms' hints and errors (form_words.py)
    MESSAGES[_lang].update(_words)


def language_of(cookie: str | None, accept_language: str | None) -> str:
    """The page language: a valid ``lang`` cookie, else the best Accept-Language match."""
    if cookie in LANGUAGES:
        return cookie
    ranked = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        ranked.append((-quality, position, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


def text(lang: str, key: str, **values: Any) -> str:
    """The message ``key`` in ``lang``, with ``values`` filled in."""
    template = MESSAGES[lang].get(key) or MESSAGES[DEFAULT_LANGUAGE][key]
    return template.format(**values) if values else template


def date_text(lang: str, value: date | datetime | None) -> str:
    """A date as people write it: ``2024年3月5日`` or ``5 Mar 2024``; ``—`` when unknown."""
    if value is None:
        return text(lang, "unknown")
    if isinstance(value, datetime):
        value = value.date()
    if lang == "zh-CN":
        return f"{value.year}年{value.month}月{value.day}日"
    return f"{value.day} {_EN_MONTHS[value.month - 1]} {value.year}"


_ZH_ZONE_NAMES = {"Asia/Shanghai": "北京时间", "Asia/Hong_Kong": "香港时间", "UTC": "协调世界时"}


def time_text(lang: str, value: datetime, zone: tzinfo) -> str:
    """A moment in ``zone``, as people write it, with the zone named (a reader elsewhere must
    not take it for their own time): ``5 Mar 2024 14:05 (Asia/Shanghai)``, and in Chinese
    the date, the time and the zone in full-width brackets, its Chinese name first if known
    (北京时间 Asia/Shanghai)."""
    local = value.astimezone(zone)
    name = str(getattr(zone, "key", None) or local.tzname() or "UTC")
    if lang == "zh-CN":
        named = f"{_ZH_ZONE_NAMES[name]} {name}" if name in _ZH_ZONE_NAMES else name
        return f"{date_text(lang, local.date())} {local:%H:%M}\uff08{named}\uff09"
    return f"{date_text(lang, local.date())} {local:%H:%M} ({name})"


def percent_text(probability: float) -> str:
    """A probability for people: never "100%" or "0%", which a calibration cannot promise."""
    if probability >= 0.99:
        return "≥99%"
    if probability <= 0.01:
        return "≤1%"
    return f"{probability * 100:.0f}%"


def error_text(lang: str, error: ReuniteError) -> str:
    """A library error as a sentence in ``lang``.

    Field errors name each field in ``lang`` (with the validator's English words only in
    English); errors with no translation keep their English detail.
    """
    problems = error.details.get("errors")
    if error.code == "invalid_field" and problems:
        return " ".join(
            text(
                lang,
                "error.field",
                field=field_label(lang, p.get("field")),
                message=p.get("message", ""),
            )
            for p in problems
        )
    key = f"error.{error.code}"
    if error.details.get("reason") == "csrf":
        key = "error.stale_form"
    if f"{key}.{error.details.get('reason')}" in MESSAGES[lang]:
        key = f"{key}.{error.details.get('reason')}"  # e.g. why an undo was refused
    if key not in MESSAGES[lang]:
        return error.message
    values = {
        **error.details,
        "detail": error.message,
        "count": len(error.details.get("boxes", [])),
    }
    return text(lang, key, **values)


def field_label(lang: str, field: str | None) -> str:
    """A case field's label in ``lang`` (its name when there is no label)."""
    if not field:
        return text(lang, "error.form")
    key = f"field.{field}"
    return text(lang, key) if key in MESSAGES[lang] else field


def flag_text(lang: str, flag: Any) -> str:
    """A flag in ``lang``. A code with no words yet, or facts its words do not expect, reads as
    the code in plain letters ("Flag: face chosen automatically"), never as an error page."""
    if f"flag.{flag.code}" in MESSAGES[DEFAULT_LANGUAGE]:
        try:
            return text(lang, f"flag.{flag.code}").format(**_flag_values(lang, flag))
        except (KeyError, IndexError, TypeError, ValueError):
            pass
    return text(lang, "flag.unnamed", code=str(flag.code).replace("_", " "))


def _flag_values(lang: str, flag: Any) -> dict[str, Any]:
    """A flag's facts as its words use them: sexes and dates in ``lang``, ranges split."""
    facts = dict(flag.facts)
    if flag.code == "sex_differs":
        facts = {k: text(lang, f"sex.{v}") for k, v in facts.items()}
    if flag.code == "age_implausible":
        facts |= {
            "missing_low": facts["missing_age"][0],
            "missing_high": facts["missing_age"][1],
            "apparent_low": facts["apparent_age"][0],
            "apparent_high": facts["apparent_age"][1],
            "on": date_text(lang, date.fromisoformat(facts["on"])),
        }
    if flag.code == "photo_age_gap":
        facts |= {
            "missing_low": facts["missing_photo_age"][0],
            "missing_high": facts["missing_photo_age"][1],
            "found_low": facts["found_photo_age"][0],
            "found_high": facts["found_photo_age"][1],
        }
    if flag.code == "face_chosen_automatically":
        facts = {
            "side": text(lang, f"flag.side.{facts['side']}"),
            "choice": text(lang, f"flag.choice.{facts['choice']}"),
        }
    if flag.code == "found_before_missing":
        facts |= {
            k: date_text(lang, date.fromisoformat(facts[k])) for k in ("date_found", "date_missing")
        }
    if flag.code == "no_longer_proposed":
        facts["since"] = date_text(lang, datetime.fromisoformat(facts["since"]).date())
    return facts
