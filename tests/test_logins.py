"""Logins: the auth file, the owner a login gets, and history that follows a user to another browser.

The unit tests cover the auth file's parsing and checks, and `identity.Owners` (who owns a request). The
end-to-end test launches the app with an auth file of two users and logs in from separate Chromium contexts:
what alice made in one browser (a conversation, an article) is listed in her second one and not in bob's,
and an API client logged in as alice owns its conversation as her. Screenshots go to `test-artifacts/`.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from app_harness import RunningApp, app_settings, start_app
from gradio.components import LoginButton
from gradio_client import Client
from test_browser import browser, loaded, send, set_max_new_tokens, shot  # noqa: F401 (the fixture)

from ixc_app.compose.options import ComposeOptions
from ixc_app.config import ConfigError, Settings, parse_settings, prepare
from ixc_app.entry import run
from ixc_app.logins import OAUTH_MODULES, AuthFileError, parse_accounts, read_accounts
from ixc_app.ui.identity import (
    LOGIN_OWNER_LENGTH,
    MissingSession,
    Owners,
    UnknownHandle,
    format_handle,
    is_token,
    new_owner,
)
from ixc_app.ui.launch import launch

ACCOUNTS = "# team logins\nalice:open:sesame\n\n  bob : hunter2 \n"
SECRET = "a-server-secret-for-the-tests"


# The auth file


def test_the_auth_file_is_user_password_lines() -> None:
    accounts = parse_accounts(ACCOUNTS)
    assert accounts.pairs() == [("alice", "open:sesame"), ("bob", "hunter2")]
    assert "sesame" not in repr(accounts) and "hunter2" not in repr(accounts)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("alice:one\nbob\n", "line 2 is not of the form user:password"),
        ("alice:one\n:secret-two\n", "line 2 is not of the form user:password"),
        ("alice:\n", "line 1 is not of the form user:password"),
        ("alice:one\nalice:two\n", "line 2 names the user 'alice' a second time"),
        ("# nobody yet\n\n", "it has no user:password line"),
    ],
)
def test_a_bad_auth_file_is_refused_without_showing_a_password(text: str, reason: str) -> None:
    with pytest.raises(AuthFileError) as refused:
        parse_accounts(text)
    assert str(refused.value) == reason


def test_an_auth_file_saved_with_a_byte_order_mark_keeps_its_first_user(tmp_path: Path) -> None:
    saved = tmp_path / "logins.txt"
    saved.write_text(ACCOUNTS, encoding="utf-8-sig")
    assert read_accounts(saved) == parse_accounts(ACCOUNTS)


def test_an_auth_file_gone_by_the_time_the_app_launches_ends_it_with_its_sentence(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """The file is read again at launch, after the model has loaded (minutes on a GPU box)."""
    logins = tmp_path / "logins.txt"
    logins.write_text(ACCOUNTS)
    argv = ["--data-dir", str(tmp_path / "data"), "--auth-file", str(logins)]

    def start(settings: Settings) -> Settings:
        settings = prepare(settings)
        logins.unlink()
        return settings

    code = run(argv, prog="app.py", what="test", start=start, serve=lambda settings: launch(None, settings))  # type: ignore[arg-type]
    assert code == 2
    assert f"The auth file {logins} cannot be used: it cannot be read" in capfd.readouterr().err


def test_the_auth_file_is_a_setting_checked_before_the_app_starts(tmp_path: Path) -> None:
    good = tmp_path / "logins.txt"
    good.write_text(ACCOUNTS)
    assert parse_settings(["--auth-file", str(good)], {}).auth_file == good
    assert parse_settings([], {"IXC_AUTH_FILE": str(good)}).auth_file == good
    assert parse_settings([], {"IXC_AUTH_FILE": ""}).auth_file is None
    assert parse_settings([], {}).auth_file is None

    bad = tmp_path / "bad.txt"
    bad.write_text("alice:s3cret-pass\nbob\n")
    with pytest.raises(ConfigError) as refused:
        prepare(parse_settings(["--data-dir", str(tmp_path / "data"), "--auth-file", str(bad)], {}))
    assert (
        str(refused.value) == f"The auth file {bad} cannot be used: line 2 is not of the form user:password."
    )
    with pytest.raises(ConfigError, match="cannot be read"):
        prepare(
            parse_settings(["--data-dir", str(tmp_path / "data"), "--auth-file", str(tmp_path / "no")], {})
        )


def test_prepare_keeps_a_login_secret_apart_from_the_browser_secret(tmp_path: Path) -> None:
    settings = prepare(parse_settings(["--data-dir", str(tmp_path)], {}))
    again = prepare(parse_settings(["--data-dir", str(tmp_path)], {}))
    assert settings.login_secret and settings.login_secret == again.login_secret
    assert settings.login_secret != settings.secret
    assert (tmp_path / "login-owner-secret").stat().st_mode & 0o077 == 0


def test_hugging_face_oauth_is_on_only_on_a_space_that_asked_for_it() -> None:
    assert parse_settings([], {"SYSTEM": "spaces", "OAUTH_CLIENT_ID": "id"}).hf_oauth
    assert not parse_settings([], {"SYSTEM": "spaces"}).hf_oauth
    assert not parse_settings([], {"OAUTH_CLIENT_ID": "id"}).hf_oauth


def test_oauth_without_its_libraries_stops_the_app_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ixc_app.logins.OAUTH_MODULES", ("gradio", "no_such_oauth_library"))
    space = {"SYSTEM": "spaces", "OAUTH_CLIENT_ID": "id"}
    with pytest.raises(
        ConfigError, match=r"libraries are missing \(no_such_oauth_library\); install requirements"
    ):
        prepare(parse_settings(["--data-dir", str(tmp_path)], space))
    assert prepare(parse_settings(["--data-dir", str(tmp_path)], {})).hf_oauth is False


# Owners


def request(username: str | None = None, oauth: dict[str, Any] | None = None) -> Any:
    """What a handler gets as its `gr.Request`: the auth username, and the session cookie's content."""
    scope = {"session": {"oauth_info": oauth}} if oauth is not None else {}
    return SimpleNamespace(username=username, request=SimpleNamespace(scope=scope))


def oauth_info(name: str, expires_in_s: float = 3600) -> dict[str, Any]:
    return {"userinfo": {"preferred_username": name}, "expires_at": time.time() + expires_in_s}


def test_a_login_owner_is_stable_and_cannot_be_worked_out_from_the_name_alone() -> None:
    owners = Owners(SECRET)
    alice = owners.login(request("alice"))
    assert alice == Owners(SECRET).login(request("alice")) != owners.login(request("bob"))
    assert alice != Owners("another-secret").login(request("alice"))
    assert is_token(alice) and len(alice) == LOGIN_OWNER_LENGTH != len(new_owner())
    assert "alice" not in alice
    assert owners.login(request()) == "" and owners.login(None) == ""
    with pytest.raises(ValueError, match="empty"):
        Owners("")


def test_the_hugging_face_login_counts_only_where_oauth_is_on_and_not_once_expired() -> None:
    signed_in = request(oauth=oauth_info("alice"))
    assert Owners(SECRET).login(signed_in) == ""
    owners = Owners(SECRET, hf_oauth=True)
    assert owners.login(signed_in) == owners.of_login("hf:alice") != owners.login(request("alice"))
    assert owners.login(request(oauth=oauth_info("alice", expires_in_s=-1))) == ""
    assert owners.login(request(oauth={})) == ""


def test_a_logged_in_request_owns_the_login_and_the_browser_keeps_its_own_token() -> None:
    owners = Owners(SECRET)
    stored = {"owner": new_owner(), "conversation": ""}
    session = owners.session(stored, request("alice"))
    assert session.owner == owners.login(request("alice"))
    assert session.to_value() == stored
    assert owners.session(stored, request()).owner == stored["owner"]
    with pytest.raises(MissingSession):
        owners.session({"owner": session.owner, "conversation": ""}, request())
    assert owners.session_or_new({"owner": session.owner}, request()).owner != session.owner


def test_a_handle_of_a_login_owner_works_only_for_that_login() -> None:
    owners = Owners(SECRET)
    alice = owners.new_owner(request("alice"))
    handle = format_handle(alice, new_owner())
    assert owners.handle(handle, request("alice"))[0] == alice
    for other in (request("bob"), request(), None):
        with pytest.raises(UnknownHandle, match="another login"):
            owners.handle(handle, other)
    anonymous = format_handle(new_owner(), new_owner())
    assert owners.handle(anonymous, request("bob"))[0] == anonymous.split(".")[0]
    assert owners.new_owner(request()) != owners.new_owner(request())


# End to end


@pytest.fixture(scope="module")
def logins_app(tmp_path_factory: pytest.TempPathFactory, engine: Any) -> Iterator[RunningApp]:
    folder = tmp_path_factory.mktemp("logins")
    auth_file = folder / "logins.txt"
    auth_file.write_text(ACCOUNTS)
    running = start_app(replace(app_settings(folder / "data"), auth_file=auth_file), engine)
    yield running
    running.close()


def logged_in_page(chromium: Any, app: RunningApp, user: str, password: str) -> Any:
    """A new browser (its own cookies and local storage) that logs in on Gradio's login page."""
    page = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(app.url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.get_by_text("Demo model: answers are random noise.").wait_for()
    loaded(page)
    return page


def listed(page: Any, selector: str) -> list[str]:
    return page.locator(f"{selector} label").all_inner_texts()


@pytest.mark.browser
def test_a_user_finds_their_history_in_a_second_browser_and_another_user_does_not(
    logins_app: RunningApp,
    browser: Any,  # noqa: F811 (the fixture)
) -> None:
    app = logins_app
    first = logged_in_page(browser, app, "alice", "open:sesame")
    set_max_new_tokens(first, 6)
    send(first, "Remember the lighthouse.")
    first.locator("#conversation-list label").first.wait_for()
    owner = Owners(app.settings.login_secret).of_login("auth:alice")
    composer = app.services.compose
    options = ComposeOptions(None, None, composer.default_settings())
    article = composer.start(owner, "A walk by the lake", [], options)

    second = logged_in_page(browser, app, "alice", "open:sesame")
    second.locator("#conversation-list label").first.wait_for()
    assert listed(second, "#conversation-list") == listed(first, "#conversation-list")
    second.locator("#conversation-list label").first.click()
    second.get_by_test_id("user").get_by_text("Remember the lighthouse.").wait_for()
    shot(second, "logins-second-browser-chat")
    second.get_by_role("tab", name="Composer").click()
    second.locator("#article-list").get_by_text(article.title).wait_for()
    shot(second, "logins-second-browser-composer")

    other = logged_in_page(browser, app, "bob", "hunter2")
    assert listed(other, "#conversation-list") == []
    other.get_by_role("tab", name="Composer").click()
    other.locator("#article-list").get_by_text("Your articles will be listed here.").wait_for()
    shot(other, "logins-another-user")


def test_an_api_client_logs_in_and_its_conversation_is_the_users(logins_app: RunningApp) -> None:
    app = logins_app
    alice = Client(app.url, auth=("alice", "open:sesame"), verbose=False, download_files=False)
    _, handle = alice.predict("Hello from a script.", [], "", 6, api_name="/chat")
    owner = Owners(app.settings.login_secret).of_login("auth:alice")
    assert handle.split(".")[0] == owner
    assert any(s.id == handle.split(".")[1] for s in app.services.chat.conversations(owner))
    _, same = alice.predict("And again.", [], handle, 6, api_name="/chat")
    assert same == handle

    assert alice.predict(handle, api_name="/conversation_export")["path"].endswith(".zip")

    bob = Client(app.url, auth=("bob", "hunter2"), verbose=False, download_files=False)
    with pytest.raises(Exception, match="another login"):
        bob.predict("Let me in.", [], handle, 6, api_name="/chat")
    with pytest.raises(Exception, match="another login"):
        bob.predict(handle, api_name="/conversation_export")
    with pytest.raises(Exception):  # noqa: B017 (gradio_client's own error for a refused login)
        Client(app.url, auth=("bob", "wrong"), verbose=False, download_files=False)


def require_oauth_libraries() -> None:
    missing = [name for name in OAUTH_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed (requirements.txt: run make setup)"
    if os.environ.get("CI"):  # CI installs requirements.txt into a fresh environment
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def test_on_a_space_with_oauth_a_signed_in_user_owns_their_api_conversation(
    logins_app: RunningApp, engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Space's OAuth set up as Hugging Face does it (Gradio reads it when the app is made), and a client
    sending the session cookie Gradio's login callback would have set for alice."""
    require_oauth_libraries()
    import gradio.oauth
    from itsdangerous import TimestampSigner

    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "team/studio")
    space = {
        "OAUTH_CLIENT_ID": "id",
        "OAUTH_CLIENT_SECRET": "client-secret",
        "OAUTH_SCOPES": "openid profile",
    }
    for name, value in {**space, "OPENID_PROVIDER_URL": "http://127.0.0.1:9"}.items():
        monkeypatch.setattr(gradio.oauth, name, value)
    assert not logins_app.demo.expects_oauth
    app = start_app(replace(app_settings(tmp_path / "data"), hf_oauth=True), engine)
    try:
        assert [b.elem_id for b in app.demo.blocks.values() if isinstance(b, LoginButton)] == ["login"]
        public = {fn.name for fn in app.demo.fns.values() if fn.api_visibility == "public"}
        assert public == {fn.name for fn in logins_app.demo.fns.values() if fn.api_visibility == "public"}
        signer = TimestampSigner(hashlib.sha256(b"client-secret-v4").hexdigest())
        content = base64.b64encode(json.dumps({"oauth_info": oauth_info("alice")}).encode())
        cookie = {"Cookie": f"session={signer.sign(content).decode()}"}
        alice = Client(app.url, headers=cookie, verbose=False, download_files=False)
        _, handle = alice.predict("Hello from the Space.", [], "", 6, api_name="/chat")
        owner = Owners(app.settings.login_secret, hf_oauth=True).of_login("hf:alice")
        assert handle.split(".")[0] == owner
        anonymous = Client(app.url, verbose=False, download_files=False)
        with pytest.raises(Exception, match="another login"):
            anonymous.predict("Let me in.", [], handle, 6, api_name="/chat")
        _, own = anonymous.predict("Hello.", [], "", 6, api_name="/chat")
        assert len(own.split(".")[0]) == len(new_owner())
    finally:
        app.close()
