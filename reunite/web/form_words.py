# ruff: noqa: RUF001 (Chinese punctuation is meant)
"""The words of the forms' hints and field errors (intake, search, agencies, passwords), in both
languages; ``words`` adds them to its ``MESSAGES``."""

from __future__ import annotations

FORM_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "hint.name": "As far as known; may be left empty. At most 200 characters.",
        "hint.age_min": "Whole years, 0 to 120.",
        "hint.age_max": "Whole years, 0 to 120; not below “from”.",
        "hint.date_found": "Year-month-day (YYYY-MM-DD), e.g. 2024-03-05; 1900 to today.",
        "hint.place": "Where the person was found; at most 500 characters.",
        "hint.description": "Marks, clothes, dialect…; at most 5000 characters.",
        "hint.contact": "Who to call about this person; at most 500 characters.",
        "hint.agency": (
            "Your agency's code: letters, digits and _ . - only, no spaces; at most 64 "
            "characters, e.g. SH-RESCUE-01."
        ),
        "hint.agency_list": "Choose the agency from the list an admin keeps.",
        "hint.external_ref": (
            "Your agency's own case number; needs an agency; at most 128 characters."
        ),
        "hint.photos": (
            "JPEG, PNG or WebP, at most {mb} MB each, up to {limit} photos. One face each; "
            "in a group photo you pick the face after sending."
        ),
        "hint.search_photo": "A JPEG, PNG or WebP photo; every face in it is searched.",
        "error.age_range": (
            "Apparent age: “from” ({low}) is above “to” ({high}). Swap them or correct one."
        ),
        "error.unknown_agency": "Agency: choose one from the list.",
        "error.ref_needs_agency_list": (
            "Agency: choose the agency that issued this case number (a case number belongs to "
            "one agency)."
        ),
        "error.ref_needs_agency": (
            "Agency: enter the code of the agency that issued this case number (a case number "
            "belongs to one agency)."
        ),
        "error.pick_face": "{filename}: this photo shows {count} faces; pick the one to use.",
        "error.kept_gone": "A kept photo has expired or was removed; choose it again.",
        "intake.kept_title": "Photos kept from before",
        "intake.kept": "kept: {filename}",
        "intake.drop": "Remove",
        "intake.pick_title": "Pick the face to use in {filename}",
        "intake.face_n": "face {number} of {count}",
        "intake.no_agency": "— none —",
        "nav.agencies": "Agencies",
        "agencies.title": "Agencies",
        "agencies.help": (
            "The intake form's list of agencies. A retired agency leaves the list; the cases "
            "that name it keep it."
        ),
        "agencies.code": "Code",
        "agencies.name": "Name",
        "hint.agency_name": "The name staff read; 1 to 200 characters.",
        "agencies.add": "Add agency",
        "agencies.rename": "Rename",
        "agencies.retire": "Retire",
        "agencies.restore": "Restore",
        "agencies.retired": "Retired",
        "agencies.active": "In use",
        "agencies.none": "No agencies yet: the intake form's agency is free text.",
        "agencies.added": "Agency {code} added.",
        "agencies.renamed": "Agency {code} renamed.",
        "agencies.retired_done": "Agency {code} retired.",
        "agencies.restored_done": "Agency {code} restored.",
        "agencies.exists": "There is already an agency with code {code}.",
        "hint.password_current": "The password you sign in with now.",
        "hint.password_new": (
            "At least {min_length} characters, and not one of the most common passwords; "
            "a few words with spaces between them are easy to remember."
        ),
        "hint.password_again": "The new password once more, exactly the same.",
    },
    "zh-CN": {
        "hint.name": "已知的姓名，可留空；最多 200 字。",
        "hint.age_min": "整数岁数，0 到 120。",
        "hint.age_max": "整数岁数，0 到 120；不小于“从”的岁数。",
        "hint.date_found": "年-月-日，例如 2024-03-05；1900 年至今天。",
        "hint.place": "发现地点；最多 500 字。",
        "hint.description": "体貌特征、衣着、口音等；最多 5000 字。",
        "hint.contact": "有关此人的联系人；最多 500 字。",
        "hint.agency": (
            "机构代码：只能用字母、数字和 _ . -，不能有空格；最多 64 个字符，例如 SH-RESCUE-01。"
        ),
        "hint.agency_list": "从管理员维护的列表中选择机构。",
        "hint.external_ref": "机构自己的案件编号；须同时填写机构；最多 128 个字符。",
        "hint.photos": (
            "JPEG、PNG 或 WebP，每张最多 {mb} MB，最多 {limit} 张。"
            "每张一人；合影可在提交后选出要用的人脸。"
        ),
        "hint.search_photo": "JPEG、PNG 或 WebP 照片；照片中的每张人脸都会被搜索。",
        "error.age_range": "估计年龄：“从”（{low}）大于“到”（{high}）。请对调或改正其中一个。",
        "error.unknown_agency": "机构：请从列表中选择。",
        "error.ref_needs_agency_list": "机构：请选择签发此案件编号的机构（案件编号属于某一机构）。",
        "error.ref_needs_agency": "机构：请填写签发此案件编号的机构代码（案件编号属于某一机构）。",
        "error.pick_face": "{filename}：这张照片中有 {count} 张人脸，请选出要用的一张。",
        "error.kept_gone": "保留的照片已过期或已移除，请重新选择。",
        "intake.kept_title": "之前选择并已保留的照片",
        "intake.kept": "已保留：{filename}",
        "intake.drop": "移除",
        "intake.pick_title": "请在 {filename} 中选出要用的人脸",
        "intake.face_n": "第 {number} 张人脸，共 {count} 张",
        "intake.no_agency": "— 无 —",
        "nav.agencies": "机构管理",
        "agencies.title": "机构",
        "agencies.help": (
            "新登记表单中的机构列表。停用的机构不再出现在列表中；已登记的案件保留该机构。"
        ),
        "agencies.code": "代码",
        "agencies.name": "名称",
        "hint.agency_name": "工作人员看到的名称；1 到 200 字。",
        "agencies.add": "添加机构",
        "agencies.rename": "改名",
        "agencies.retire": "停用",
        "agencies.restore": "恢复",
        "agencies.retired": "已停用",
        "agencies.active": "使用中",
        "agencies.none": "还没有机构：新登记表单中的机构为自由填写。",
        "agencies.added": "已添加机构 {code}。",
        "agencies.renamed": "机构 {code} 已改名。",
        "agencies.retired_done": "机构 {code} 已停用。",
        "agencies.restored_done": "机构 {code} 已恢复。",
        "agencies.exists": "已有代码为 {code} 的机构。",
        "hint.password_current": "您现在登录用的密码。",
        "hint.password_new": (
            "至少 {min_length} 个字符，且不能是最常见的密码之一；用空格隔开的几个词好记又安全。"
        ),
        "hint.password_again": "再输入一次新密码，须与上面完全相同。",
    },
}
