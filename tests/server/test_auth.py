"""Sign-in, sessions, CSRF, rate limiting, API tokens and roles (fleet_server.auth)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete
from typer.testing import CliRunner

from fleet_server.auth.deps import ApiPrincipal, ItUser, PageUser, ResultsReader, ensure_station_results
from fleet_server.auth.passwords import WeakPasswordError, hash_password, verify_password
from fleet_server.auth.ratelimit import LoginLimiter
from fleet_server.auth.service import AuthSetupError, add_user, disable_user, revoke_token
from fleet_server.auth.sessions import SESSION_COOKIE
from fleet_server.auth.setup import install_auth
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import Settings, SettingsError
from fleet_server.models import LoginFailure
from tests.support.auth_helpers import PASSWORD, ensure_station, make_token, make_user, sign_in

SECRET = "s" * 40


@pytest.fixture
def factory(sqlite_url):
    engine = make_engine(sqlite_url)
    migrate(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _app(factory, **settings) -> FastAPI:
    app = FastAPI()
    app.state.session_factory = factory
    install_auth(app, Settings(session_secret=SECRET, **settings))

    @app.get("/api/whoami")
    def whoami(p: ApiPrincipal):
        return {"name": p.name, "role": p.role, "kind": p.kind}

    @app.get("/api/results/{station_id}")
    def results(station_id: str, p: ResultsReader):
        ensure_station_results(p, station_id)
        return {"ok": station_id}

    @app.get("/api/it-only")
    def it_only(p: ItUser):
        return {"ok": True}

    @app.get("/page")
    def page(p: PageUser):
        return {"hello": p.name, "csrf": p.csrf}

    return app


@pytest.fixture
def client(factory):
    with TestClient(_app(factory)) as c:
        yield c


def test_passwords_are_argon2_hashed_and_verified():
    stored = hash_password("a long enough secret")
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "a long enough secret")
    assert not verify_password(stored, "a long enough secreT")
    assert not verify_password(None, "anything at all")


def test_user_creation_checks_role_station_and_strength(factory):
    with factory() as s:
        ensure_station(s, "kalvia")
        with pytest.raises(AuthSetupError, match="give a station"):
            add_user(s, "anna", "staff", PASSWORD)
        with pytest.raises(AuthSetupError, match="not one of"):
            add_user(s, "anna", "boss", PASSWORD)
        with pytest.raises(AuthSetupError, match="does not exist"):
            add_user(s, "anna", "staff", PASSWORD, "nowhere")
        with pytest.raises(WeakPasswordError):
            add_user(s, "anna", "coordinator", "short")
        add_user(s, "anna", "staff", PASSWORD, "kalvia")
        with pytest.raises(AuthSetupError, match="already exists"):
            add_user(s, "anna", "staff", PASSWORD, "kalvia")


def test_anonymous_page_redirects_to_login_and_api_answers_401(client):
    r = client.get("/page?x=1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/page%3Fx%3D1"
    r = client.get("/api/whoami")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_sign_in_sets_an_httponly_samesite_cookie_and_opens_pages(client, factory):
    make_user(factory, "coord", "coordinator")
    r = sign_in(client, "coord", next_url="/page")
    assert r.status_code == 303 and r.headers["location"] == "/page"
    cookie = r.headers["set-cookie"]
    assert f"{SESSION_COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http in this test
    assert client.get("/page").json()["hello"] == "coord"
    assert client.get("/api/whoami").json() == {"name": "coord", "role": "coordinator", "kind": "user"}


def test_cookie_is_secure_over_https(factory):
    make_user(factory, "coord", "coordinator")
    with TestClient(_app(factory), base_url="https://testserver") as c:
        assert "Secure" in sign_in(c, "coord").headers["set-cookie"]


def test_wrong_password_and_unknown_user_look_the_same(client, factory):
    make_user(factory, "coord", "coordinator")
    a = sign_in(client, "coord", "wrong password!")
    b = sign_in(client, "nobody", "wrong password!")
    assert a.status_code == b.status_code == 401
    assert "Wrong user name or password" in a.text and "Wrong user name or password" in b.text
    assert SESSION_COOKIE not in client.cookies


def test_sign_in_without_the_form_csrf_token_is_refused(client, factory):
    make_user(factory, "coord", "coordinator")
    client.get("/login")
    r = client.post("/login", data={"username": "coord", "password": PASSWORD, "csrf_token": "forged"})
    assert r.status_code == 403 and SESSION_COOKIE not in client.cookies


def test_repeated_failures_lock_sign_in_even_with_the_right_password(factory):
    make_user(factory, "coord", "coordinator")
    with TestClient(_app(factory, login_max_failures=3, login_window_s=600)) as c:
        for _ in range(3):
            assert sign_in(c, "coord", "wrong password!").status_code == 401
        r = sign_in(c, "coord")
        assert r.status_code == 429 and "Too many failed sign-ins" in r.text
        assert int(r.headers["retry-after"]) > 0


def test_limiter_window_slides(factory):
    from datetime import UTC, datetime, timedelta

    now = [datetime(2026, 12, 1, 8, 0, tzinfo=UTC)]
    limiter = LoginLimiter(2, 60, clock=lambda: now[0])
    with factory() as s:
        limiter.failed(s, "u")
        limiter.failed(s, "u")
        assert limiter.retry_after(s, "u") == pytest.approx(60)
        assert limiter.retry_after(s, "someone-else") == 0
        now[0] += timedelta(seconds=61)
        assert limiter.retry_after(s, "u") == 0


def test_failures_count_across_server_processes_per_name_and_per_address_apart(factory):
    """Two apps on one database stand for two server processes behind a load balancer."""
    make_user(factory, "coord", "coordinator")
    make_user(factory, "staff1", "coordinator")
    first = TestClient(_app(factory, login_max_failures=3, login_window_s=600))
    second = TestClient(_app(factory, login_max_failures=3, login_window_s=600))
    with first, second:
        assert sign_in(first, "coord", "wrong password!").status_code == 401
        assert sign_in(second, "coord", "wrong password!").status_code == 401
        assert sign_in(first, "coord", "wrong password!").status_code == 401
        assert sign_in(second, "coord").status_code == 429  # the name is locked, whichever process asks
        # The address has 3 failures too: another name from it waits as well ...
        assert sign_in(first, "staff1").status_code == 429
    with factory() as s:  # ... and a name's failures alone lock it from any address
        s.execute(delete(LoginFailure).where(LoginFailure.key.like("addr:%")))
        s.commit()
    with TestClient(_app(factory, login_max_failures=3, login_window_s=600)) as third:
        assert sign_in(third, "staff1").status_code == 303
        assert sign_in(third, "coord").status_code == 429


def test_next_parameter_cannot_redirect_off_site(client, factory):
    make_user(factory, "coord", "coordinator")
    assert sign_in(client, "coord", next_url="//evil.example/").headers["location"] == "/"


def test_sign_out_needs_the_csrf_token_and_ends_the_session(client, factory):
    make_user(factory, "coord", "coordinator")
    sign_in(client, "coord")
    csrf = client.get("/page").json()["csrf"]
    assert client.post("/logout", data={"csrf_token": "nope"}).status_code == 403
    r = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/api/whoami").status_code == 401


def test_disabling_a_user_ends_their_sessions(client, factory):
    make_user(factory, "coord", "coordinator")
    sign_in(client, "coord")
    assert client.get("/api/whoami").status_code == 200
    with factory() as s:
        disable_user(s, "coord")
        s.commit()
    assert client.get("/api/whoami").status_code == 401


def test_tampered_session_cookie_is_ignored(client, factory):
    make_user(factory, "coord", "coordinator")
    sign_in(client, "coord")
    value = client.cookies[SESSION_COOKIE]
    client.cookies.set(SESSION_COOKIE, value[:-2] + ("A" if value[-2] != "A" else "B") + value[-1])
    assert client.get("/api/whoami").status_code == 401


def test_bearer_token_works_until_revoked(client, factory):
    token = make_token(factory, "county-reporting", "coordinator")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/whoami", headers=headers).json() == {
        "name": "county-reporting", "role": "coordinator", "kind": "token"}
    assert client.get("/api/whoami", headers={"Authorization": "Bearer plt_" + "x" * 43}).status_code == 401
    with factory() as s:
        revoke_token(s, "county-reporting")
        s.commit()
    assert client.get("/api/whoami", headers=headers).status_code == 401


@pytest.mark.parametrize(
    "role, station, own, other, it_only",
    [
        ("coordinator", None, 200, 200, 403),
        ("staff", "kalvia", 200, 403, 403),
        ("it", None, 403, 403, 200),
        ("admin", None, 403, 403, 403),
    ],
)
def test_roles_decide_what_a_token_may_read(client, factory, role, station, own, other, it_only):
    with factory() as s:
        ensure_station(s, "kalvia")
        ensure_station(s, "lohtaja")
        s.commit()
    headers = {"Authorization": f"Bearer {make_token(factory, 't-' + role, role, station)}"}
    assert client.get("/api/results/kalvia", headers=headers).status_code == own
    assert client.get("/api/results/lohtaja", headers=headers).status_code == other
    assert client.get("/api/it-only", headers=headers).status_code == it_only


def test_production_refuses_to_start_without_a_session_secret(factory):
    with pytest.raises(SettingsError, match="PALAUTE_SESSION_SECRET"):
        install_auth(FastAPI(), Settings())
    install_auth(FastAPI(), Settings(mode="demo"))  # demo: a throwaway secret


def test_cli_adds_users_from_stdin_and_prints_a_token_once(sqlite_url, monkeypatch, factory):
    from fleet_server.cli.users import token_app, user_app

    monkeypatch.setenv("PALAUTE_DATABASE_URL", sqlite_url)
    with factory() as s:
        ensure_station(s, "kalvia")
        s.commit()
    runner = CliRunner()
    r = runner.invoke(user_app, ["add", "anna", "--role", "staff", "--station", "kalvia"], input=PASSWORD + "\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(user_app, ["add", "bob", "--role", "staff"], input=PASSWORD + "\n")
    assert r.exit_code == 1 and "give a station (or a group)" in r.output
    from fleet_server.cli import app  # the whole command line: in the reader's language
    r = runner.invoke(app, ["user", "add", "bob", "--role", "staff", "--station", "kalvia"], input="short\n",
                      env={"PALAUTE_LANG": "sv"})
    assert r.exit_code == 1 and "fel: lösenordet har 5 tecken; använd minst 10" in r.output
    r = runner.invoke(app, ["user", "add", "anna", "--role", "staff", "--station", "kalvia"], input=PASSWORD + "\n",
                      env={"PALAUTE_LANG": "fi"})
    assert r.exit_code == 1 and "virhe: käyttäjä 'anna' on jo olemassa" in r.output
    r = runner.invoke(token_app, ["create", "reporting", "--role", "coordinator"])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[0]
    assert token.startswith("plt_")
    listed = runner.invoke(token_app, ["list"]).stdout
    assert "reporting" in listed and token not in listed
    with TestClient(_app(factory)) as c:
        assert sign_in(c, "anna").status_code == 303
        assert c.get("/api/whoami", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert runner.invoke(token_app, ["revoke", "reporting"]).exit_code == 0


def test_pages_carry_security_headers(client):
    r = client.get("/login")
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
