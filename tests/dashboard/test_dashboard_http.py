"""The dashboard service for real: its nameko container on its own broker account (SPEC §7)
calling members' container on members' account, over HTTP: sign-in by link and by pasted
token, the cookie, the token forwarded to RPC, a service that is not running, sign-out, and
what its account may not do."""
import pytest
import requests
from amqp.exceptions import AccessRefused
from kombu import Connection
from nameko.standalone.rpc import ClusterRpcProxy

from orglife.common.auth import mint_token
from orglife.common.topology import declare_topology
from orglife.system import SYSTEM
from services.dashboard.tickets import mint_ticket
from tests.conftest import SECRET, bearer, migrated_sqlite, service_config, unique_name

pytestmark = pytest.mark.integration


@pytest.fixture
def accounts_vhost(rabbit):
    vhost = unique_name("dash")
    rabbit.create_vhost(vhost)
    with Connection(rabbit.amqp_uri.rstrip("/") + "/" + vhost) as conn:
        declare_topology(conn.channel(), SYSTEM)  # as `orglife up` does
    yield vhost
    rabbit.delete_vhost(vhost)


@pytest.fixture
def running(rabbit, accounts_vhost, container_factory, tmp_path):
    members_uri = rabbit.service_account("members", accounts_vhost)
    members = container_factory(SYSTEM.service("members").load_class(), service_config(
        "members", members_uri, migrated_sqlite(tmp_path, "members"), tmp_path))
    members.start()
    dashboard_uri = rabbit.service_account("dashboard", accounts_vhost)
    config = service_config("dashboard", dashboard_uri, "sqlite:///unused", tmp_path,
                            WEB_SERVER_ADDRESS="127.0.0.1:0",
                            ORGLIFE_DASHBOARD_READ_TIMEOUT="3")
    dashboard = container_factory(SYSTEM.service("dashboard").load_class(), config)
    dashboard.start()
    admin = rabbit.amqp_uri.rstrip("/") + "/" + accounts_vhost
    with ClusterRpcProxy({"AMQP_URI": admin}, context_data={"authorization": bearer()},
                         timeout=30) as cluster:
        for org in ({"org_id": "c1", "name": "青山县", "kind": "county"},
                    {"org_id": "t1", "name": "石桥镇", "kind": "township", "parent_id": "c1"},
                    {"org_id": "t2", "name": "白沙乡", "kind": "township", "parent_id": "c1"}):
            cluster.members.register_organization(org)
    base = (tmp_path / "run" / "dashboard.url").read_text().strip()
    yield base, dashboard_uri
    dashboard.stop()
    members.stop()


def test_the_dashboard_reads_with_the_users_token_on_its_own_account(running):
    base, dashboard_uri = running
    web = requests.Session()
    assert web.get(base + "/", allow_redirects=False).headers["Location"] == "/signin?next=%2F"
    # the CLI's link: signs in, then leaves the address bar without the ticket
    link = f"{base}/signin?ticket={mint_ticket(SECRET, mint_token(SECRET, 'cli', 'county_admin'))}"
    signed = web.get(link, allow_redirects=False)
    assert signed.status_code == 303 and signed.headers["Location"] == "/"
    cookie = signed.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert web.get(link, allow_redirects=False).status_code == 401  # good once
    start = web.get(base + "/", allow_redirects=False)
    assert start.status_code == 302 and start.headers["Location"] == "/org/c1"  # over RPC
    assert "script-src 'self'" in start.headers["Content-Security-Policy"]
    # scoring is not running here: the page says so instead of hanging
    missing = web.get(base + "/org/c1")
    assert missing.status_code == 503 and "服务未运行" in missing.text
    health = web.get(base + "/panel/health", headers={"HX-Request": "true"})
    assert health.status_code == 200
    assert health.text.count("正常") == 1 and health.text.count("未应答") == 3
    # a township admin pasting its token: its own township only
    township = requests.Session()
    pasted = township.post(base + "/signin", data={
        "token": mint_token(SECRET, "li", "township_admin", "t2"), "next": "/org/t1"},
        headers={"Origin": base}, allow_redirects=False)
    assert pasted.status_code == 303 and pasted.headers["Location"] == "/org/t1"
    refused = township.get(base + "/org/t1")
    assert refused.status_code == 403 and "无权查看" in refused.text and "t1" not in \
        refused.text.split("<main>")[1]
    assert township.get(base + "/", allow_redirects=False).headers["Location"] == "/org/t2"
    # a form from another site is refused; signing out clears the cookie
    assert township.post(base + "/signout", headers={"Origin": "http://evil.example"},
                         allow_redirects=False).status_code == 403
    out = township.post(base + "/signout", headers={"Origin": base}, allow_redirects=False)
    assert out.status_code == 303 and "Max-Age=0" in out.headers["Set-Cookie"]
    assert township.get(base + "/org/t2", allow_redirects=False).status_code == 303
    bad = requests.post(base + "/signin", data={"token": "nonsense"})
    assert bad.status_code == 401 and "令牌无效" in bad.text


def test_the_dashboards_account_may_call_services_and_nothing_more(running):
    _, dashboard_uri = running
    with pytest.raises(AccessRefused):
        with Connection(dashboard_uri) as conn:
            conn.channel().basic_get("members.events--meetings", no_ack=False)
    with pytest.raises(AccessRefused):  # another service's replies
        with Connection(dashboard_uri) as conn:
            channel = conn.channel()
            channel.queue_declare("rpc.reply-members-0b8e5a6c-1d2e-4f5a-8b9c-0d1e2f3a4b5c",
                                  auto_delete=True)
    with pytest.raises(AccessRefused):  # others' requests, with their tokens
        with Connection(dashboard_uri) as conn:
            channel = conn.channel()
            name = "rpc.reply-dashboard-0b8e5a6c-1d2e-4f5a-8b9c-0d1e2f3a4b5c"
            channel.queue_declare(name, auto_delete=True)
            channel.queue_bind(name, "nameko-rpc", "members.get_member")


def test_health_shows_queue_depths_and_parked_and_errors_read_chinese(rabbit, running,
                                                                    accounts_vhost):
    """Three events waiting for scoring (not running: no consumer) and two parked: the
    panel counts them from the broker, red, and the system is not reported healthy. And
    members' NotFound as it arrives over RPC (nameko rebuilds it from its message) is
    worded in Chinese by what the error page uses (services/dashboard/wording.py)."""
    import re

    from orglife.common.errors import NotFound
    from services.dashboard import wording

    from kombu import Producer
    base, _ = running
    waiting = SYSTEM.subscription("scoring", "meetings")
    parked = SYSTEM.subscription("members", "meetings")
    admin = rabbit.amqp_uri.rstrip("/") + "/" + accounts_vhost
    with Connection(admin) as conn:
        producer = Producer(conn.channel())
        for queue, count in ((waiting.queue_name, 3), (parked.parking_queue_name, 2)):
            for n in range(count):
                producer.publish({"n": n}, exchange="", routing_key=queue)
    with ClusterRpcProxy({"AMQP_URI": admin}, context_data={"authorization": bearer()},
                         timeout=30) as cluster:
        with pytest.raises(NotFound) as missing:
            cluster.members.get_member("m404")
        with pytest.raises(NotFound) as nowhere:
            cluster.members.get_organization("t404")
    assert wording.not_found(missing.value) == "党员「m404」不存在"
    assert wording.not_found(nowhere.value) == "组织「t404」不存在"
    web = requests.Session()
    web.get(f"{base}/signin?ticket="
            f"{mint_ticket(SECRET, mint_token(SECRET, 'cli', 'county_admin'))}")
    panel = web.get(base + "/panel/health", headers={"HX-Request": "true"}).text
    rows = {re.search(r"<td[^>]*>([^<]+)</td>", row).group(1): row
            for row in re.findall(r"<tr[^>]*>.*?</tr>", panel, re.S) if "--" in row}
    cells = lambda row: [re.sub(r"<[^>]+>", "", cell).strip()  # noqa: E731
                         for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
    assert cells(rows[waiting.queue_name])[3:] == ["3", "0", "0"]  # waiting, consumers, parked
    assert cells(rows[parked.queue_name])[3:] == ["0", "1", "2"]
    assert rows[parked.queue_name].startswith('<tr class="red"')
    assert '<span class="badge red">2</span>' in rows[parked.queue_name]
    assert rows[waiting.queue_name].startswith('<tr class="red"')  # nobody consumes it
    others = [row for queue, row in rows.items() if queue.startswith("members.events--")]
    assert others and not any(row.startswith('<tr class="red"') for row in others
                              if cells(row)[4] != "0")

