"""Account pages: one's own account (display name and password, any signed-in user), and the
accounts page for admins (list users; enable, disable, reset a password, set a role or a
display name).

Every change goes through ``reunite.accounts``, which audits it; these pages hold no rules of
their own beyond "only an admin manages accounts".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from reunite import accounts
from reunite.access import USER_ROLES
from reunite.api.auth import check_csrf, limit_sign_ins, service_of, start_session
from reunite.errors import Conflict, Forbidden, InvalidField, NotAuthenticated, ReuniteError
from reunite.store import UserRow
from reunite.web import i18n
from reunite.web.pages import PageRoute, language, page_user, render

router = APIRouter(include_in_schema=False, route_class=PageRoute)

PASSWORD_PAGE = "/account/password"
"""One's own account: the display name and the password."""
DISPLAY_NAME_FORM = "/account/display-name"
USERS_PAGE = "/admin/users"


def _min_length(request: Request) -> int:
    return int(service_of(request).settings.min_password_length)


def _policy_text(lang: str, error: ReuniteError) -> str:
    """The password policy's refusal, in ``lang`` (with the least length where it applies)."""
    return i18n.text(lang, "account.password_policy", detail=i18n.error_text(lang, error))


def _current_password_ok(request: Request, user: UserRow, password: str) -> bool:
    """Whether ``password`` is the user's own (a guess spends a sign-in attempt)."""
    limit_sign_ins(request, user.username)
    with service_of(request).store.transaction() as session:
        try:
            accounts.authenticated_user(session, user.username, password)
        except NotAuthenticated:
            return False
    return True


# ------------------------------------------------------------------------- own password


def _password_page(request: Request, *, status_code: int = 200, **context: object) -> Response:
    """One's own account page; ``errors`` (by field) are shown next to their fields."""
    context.setdefault("errors", {})
    return render(
        request,
        "password.html",
        status_code=status_code,
        min_length=_min_length(request),
        **context,
    )


@router.get(PASSWORD_PAGE)
def password_page(request: Request) -> Response:
    page_user(request)
    return _password_page(request)


def _password_errors(
    request: Request, user: UserRow, current: str, new: str, again: str
) -> dict[str, str]:
    """What is wrong with a change of one's own password, by field, in the user's language:
    the current password, the new one (the policy), the new one again (not the same)."""
    lang = language(request)
    errors: dict[str, str] = {}
    if not _current_password_ok(request, user, current):
        errors["current"] = i18n.text(lang, "account.wrong_current")
    try:
        accounts.check_new_password(new, _min_length(request))
    except InvalidField as exc:
        errors["new"] = _policy_text(lang, exc)
    if "new" not in errors and new != again:
        errors["again"] = i18n.text(lang, "account.mismatch")
    return errors


@router.post(PASSWORD_PAGE)
def change_password(
    request: Request,
    current: Annotated[str, Form(max_length=1024)] = "",
    new: Annotated[str, Form(max_length=1024)] = "",
    again: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Change the signed-in user's password: their other sessions end (the library's reset
    ends them all; this one is started again). A refused change marks every wrong field."""
    user = page_user(request)
    check_csrf(request, csrf_token)
    lang = language(request)
    errors = _password_errors(request, user, current, new, again)
    if not errors:
        try:
            changed = accounts.reset_password(
                service_of(request).store,
                user.username,
                new,
                actor=f"user:{user.username}",
                min_password_length=_min_length(request),
            )
        except InvalidField as exc:
            errors["new"] = _policy_text(lang, exc)
    if errors:
        return _password_page(request, status_code=422, errors=errors)
    start_session(request, changed)
    request.session["notice"] = i18n.text(lang, "account.password_changed")
    return RedirectResponse(PASSWORD_PAGE, status_code=303)


@router.post(DISPLAY_NAME_FORM)
def change_display_name(
    request: Request,
    display_name: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Set the signed-in user's own display name (audited by id, never the name)."""
    user = page_user(request)
    check_csrf(request, csrf_token)
    lang = language(request)
    try:
        accounts.set_display_name(
            service_of(request).store, user.username, display_name, actor=f"user:{user.username}"
        )
    except InvalidField as exc:
        errors = {"display_name": i18n.error_text(lang, exc)}
        return _password_page(request, status_code=422, errors=errors, typed_name=display_name)
    request.session["notice"] = i18n.text(lang, "account.display_name_done")
    return RedirectResponse(PASSWORD_PAGE, status_code=303)


# ----------------------------------------------------------------------------- accounts


def admin_user(request: Request) -> UserRow:
    """The signed-in admin; ``Forbidden`` (403) for anyone else signed in."""
    user = page_user(request)
    if user.role != "admin":
        raise Forbidden("Only an admin may manage accounts.")
    return user


def _users_page(
    request: Request, *, status_code: int = 200, errors: dict[str, str] | None = None
) -> Response:
    """The accounts page; ``errors`` are keyed ``"<form>/<username>"`` (the form is ``enabled``,
    ``role``, ``display-name`` or ``password``), shown next to that form."""
    return render(
        request,
        "users.html",
        status_code=status_code,
        accounts=accounts.users(service_of(request).store),
        roles=USER_ROLES,
        errors=errors or {},
        min_length=_min_length(request),
    )


@router.get(USERS_PAGE)
def users_page(request: Request) -> Response:
    admin_user(request)
    return _users_page(request)


def _done(request: Request, key: str, username: str) -> Response:
    request.session["notice"] = i18n.text(language(request), key, username=username)
    return RedirectResponse(USERS_PAGE, status_code=303)


@router.post(USERS_PAGE + "/{username}/enabled")
def set_enabled(
    request: Request,
    username: str,
    enabled: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    admin = admin_user(request)
    check_csrf(request, csrf_token)
    store, actor = service_of(request).store, f"user:{admin.username}"
    if enabled == "1":
        accounts.enable_user(store, username, actor=actor)
        return _done(request, "users.enabled_done", username)
    try:
        accounts.disable_user(store, username, actor=actor)
    except Conflict as exc:  # the last enabled admin
        return _refused(request, 409, f"enabled/{username}", exc)
    return _done(request, "users.disabled_done", username)


def _refused(request: Request, status_code: int, where: str, error: ReuniteError) -> Response:
    """The accounts page again, with the refusal in the user's language next to its form."""
    message = i18n.error_text(language(request), error)
    return _users_page(request, status_code=status_code, errors={where: message})


@router.post(USERS_PAGE + "/{username}/password")
def reset_password(
    request: Request,
    username: str,
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    admin = admin_user(request)
    check_csrf(request, csrf_token)
    try:
        changed = accounts.reset_password(
            service_of(request).store,
            username,
            password,
            actor=f"user:{admin.username}",
            min_password_length=_min_length(request),
        )
    except InvalidField as exc:
        errors = {f"password/{username}": _policy_text(language(request), exc)}
        return _users_page(request, status_code=422, errors=errors)
    if changed.id == admin.id:  # one's own reset ends one's sessions: keep this one
        start_session(request, changed)
    return _done(request, "users.password_done", username)


@router.post(USERS_PAGE + "/{username}/role")
def set_role(
    request: Request,
    username: str,
    role: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    admin = admin_user(request)
    check_csrf(request, csrf_token)
    try:
        accounts.set_user_role(
            service_of(request).store, username, role, actor=f"user:{admin.username}"
        )
    except Conflict as exc:  # the last enabled admin
        return _refused(request, 409, f"role/{username}", exc)
    return _done(request, "users.role_done", username)


@router.post(USERS_PAGE + "/{username}/display-name")
def set_display_name(
    request: Request,
    username: str,
    display_name: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    admin = admin_user(request)
    check_csrf(request, csrf_token)
    try:
        accounts.set_display_name(
            service_of(request).store, username, display_name, actor=f"user:{admin.username}"
        )
    except InvalidField as exc:
        return _refused(request, 422, f"display-name/{username}", exc)
    return _done(request, "users.display_name_done", username)
