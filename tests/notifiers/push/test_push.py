"""The push notifier against local FCM and Web Push services speaking the real protocols."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid

from breachflow.models.delivery import Channel, DeliveryResult, DeliveryStatus, OutboundMessage
from breachflow.notifiers.push.common import BODY_BUDGET, push_kind, validate_push_contact
from breachflow.notifiers.push.fcm import FCM_SCOPE, FcmClient
from breachflow.notifiers.push.notifier import PushNotifier
from breachflow.notifiers.push.webpush import WebPushClient, generate_vapid_keys
from tests.testkit.push_servers import (
    FakeFcm,
    FakePushService,
    FcmReply,
    SubscriberKeys,
    b64url,
    make_service_account,
)

VAPID_PRIVATE, VAPID_PUBLIC = generate_vapid_keys()
SUBJECT = "mailto:security-notice@example.com"
LINK = "https://notice.example.com/n/abc123"
SHORT = "A security incident involved your personal information. Read more: " + LINK


class CountingPacer:
    """Counts waits; a request sent from a thread must depart with its wait's slot."""

    def __init__(self) -> None:
        self.waits = 0
        self.departed: list[float] = []

    async def wait(self) -> float:
        self.waits += 1
        return float(self.waits)

    def depart(self, slot: float) -> float:
        self.departed.append(slot)
        return time.time()


def fcm_token(n: int) -> str:
    return f"dK{n:04d}xQ:APA91b" + "Fq3z_x-9" * 18


def outbound(n: int, recipient: str, **overrides: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "notification_id": n,
        "message_id": f"<INC-2026-0001-{n}-push-v1@example.com>",
        "channel": Channel.PUSH,
        "recipient": recipient,
        "locale": "en",
        "subject": "Important: a security incident involving your personal information",
        "text": f"Dear Person {n},\n\nWHAT HAPPENED\nSomething happened.\n",
        "short_text": SHORT,
        "link": LINK,
    }
    fields.update(overrides)
    return OutboundMessage.model_validate(fields)


def by_id(results: list[DeliveryResult]) -> dict[int, DeliveryResult]:
    mapped = {r.notification_id: r for r in results}
    assert len(mapped) == len(results), "a message got more than one result"
    return mapped


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def fcm() -> Iterator[FakeFcm]:
    with FakeFcm() as server:
        yield server


@pytest.fixture
def push_service() -> Iterator[FakePushService]:
    with FakePushService(application_server_key=VAPID_PUBLIC) as server:
        yield server


def fcm_client(fcm: FakeFcm, **options: object) -> FcmClient:
    account = options.pop("account", None) or fcm.service_account()
    return FcmClient(account, base_url=fcm.url, timeout=5.0, **options)  # type: ignore[arg-type]


def webpush_client(**options: object) -> WebPushClient:
    arguments: dict[str, object] = {"vapid_private_key": VAPID_PRIVATE, "vapid_subject": SUBJECT}
    arguments.update(options)
    return WebPushClient(timeout=5.0, **arguments)  # type: ignore[arg-type]


# --- FCM -----------------------------------------------------------------------------------


def test_fcm_sends_the_v1_message_and_reports_its_name(fcm: FakeFcm) -> None:
    """Accepted: sent, provider id = FCM's message name; the message has the v1 shape."""
    msg = outbound(1, fcm_token(1))
    [result] = asyncio.run(fcm_client(fcm).send([msg]))

    assert result.status is DeliveryStatus.SENT
    assert result.provider_message_id
    assert result.provider_message_id.startswith("projects/breachflow-test/messages/0:")
    assert fcm.accepted == [
        {
            "token": fcm_token(1),
            "notification": {"title": msg.subject, "body": SHORT},
            "data": {"link": LINK, "notice_id": msg.message_id},
        }
    ]
    [claims] = fcm.token_claims
    assert claims["scope"] == FCM_SCOPE
    assert claims["aud"] == fcm.token_uri
    assert claims["exp"] - claims["iat"] == 3600
    assert fcm.rejections == []


def test_fcm_body_is_the_notice_cut_to_fit_when_there_is_no_short_text(fcm: FakeFcm) -> None:
    """Without a short text, the notice is cut (CJK too) within the budget, marked with …"""
    text = "尊敬的用户：我们发现了一起涉及您个人信息的安全事件。" * 60
    msg = outbound(1, fcm_token(1), text=text, short_text=None, link=None)
    [result] = asyncio.run(fcm_client(fcm).send([msg]))

    assert result.status is DeliveryStatus.SENT
    [accepted] = fcm.accepted
    body = accepted["notification"]["body"]
    assert body.endswith("…")
    assert text.startswith(body[:-1])
    assert BODY_BUDGET - 10 < len(body.encode()) <= BODY_BUDGET
    assert accepted["data"]["link"] == ""


def test_fcm_fetches_one_access_token_for_many_messages(fcm: FakeFcm) -> None:
    """Six concurrent messages, then another batch: one token exchange serves all of them."""
    client = fcm_client(fcm, concurrency=4)
    first = asyncio.run(client.send([outbound(n, fcm_token(n)) for n in range(1, 7)]))
    second = asyncio.run(client.send([outbound(n, fcm_token(n)) for n in (7, 8)]))

    assert {r.status for r in first + second} == {DeliveryStatus.SENT}
    assert fcm.token_requests == 1
    assert sorted(m["token"] for m in fcm.accepted) == sorted(fcm_token(n) for n in range(1, 9))


def test_fcm_refreshes_the_token_once_after_a_401(fcm: FakeFcm) -> None:
    """Tokens revoked mid-run: one new token for the batch, each message resent once."""
    pacer = CountingPacer()
    client = fcm_client(fcm, concurrency=3, pacer=pacer)
    asyncio.run(client.send([outbound(1, fcm_token(1))]))
    fcm.revoke_access_tokens()
    results = asyncio.run(client.send([outbound(n, fcm_token(n)) for n in (2, 3, 4)]))

    assert {r.status for r in results} == {DeliveryStatus.SENT}
    assert fcm.token_requests == 2
    assert len(fcm.accepted) == 4
    assert fcm.send_requests == 1 + 3 + 3  # three refused with 401, three resent
    assert pacer.waits == fcm.send_requests


def test_fcm_fetches_a_new_token_before_the_old_one_expires() -> None:
    """A token about to expire is replaced before use, not after a 401."""
    with FakeFcm(token_lifetime=2) as fcm:
        client = fcm_client(fcm)
        asyncio.run(client.send([outbound(1, fcm_token(1))]))
        time.sleep(1.1)  # past the refresh point (half of a short lifetime)
        [result] = asyncio.run(client.send([outbound(2, fcm_token(2))]))

        assert result.status is DeliveryStatus.SENT
        assert fcm.token_requests == 2
        assert fcm.send_requests == 2


def test_fcm_dead_tokens_are_permanent_and_marked_dead(fcm: FakeFcm) -> None:
    """UNREGISTERED and an invalid token: the contact is dead; a sender mismatch is not."""
    fcm.replies[fcm_token(1)] = FcmReply.unregistered()
    fcm.replies[fcm_token(2)] = FcmReply.invalid_token()
    fcm.replies[fcm_token(3)] = FcmReply.sender_mismatch()
    batch = [outbound(n, fcm_token(n)) for n in (1, 2, 3, 4)]
    results = by_id(asyncio.run(fcm_client(fcm).send(batch)))

    assert results[1].status is DeliveryStatus.FAILED_PERMANENT
    assert results[1].contact_dead
    assert results[1].detail == "push token not registered"
    assert results[2].status is DeliveryStatus.FAILED_PERMANENT
    assert results[2].contact_dead
    assert results[2].detail == "push token invalid"
    assert results[3].status is DeliveryStatus.FAILED_PERMANENT
    assert not results[3].contact_dead
    assert results[3].detail and "SENDER_ID_MISMATCH" in results[3].detail
    assert results[4].status is DeliveryStatus.SENT
    assert [m["token"] for m in fcm.accepted] == [fcm_token(4)]


def test_fcm_throttling_and_outages_are_temporary_with_retry_after(fcm: FakeFcm) -> None:
    """429 and 503 are retried later, not sooner than FCM's Retry-After (seconds or a date)."""
    in_two_minutes = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    fcm.replies[fcm_token(1)] = FcmReply.quota_exceeded(retry_after="30")
    fcm.replies[fcm_token(2)] = FcmReply.unavailable()
    fcm.replies[fcm_token(3)] = FcmReply.unavailable(retry_after=in_two_minutes)
    batch = [outbound(n, fcm_token(n)) for n in (1, 2, 3)]
    results = by_id(asyncio.run(fcm_client(fcm).send(batch)))

    assert {r.status for r in results.values()} == {DeliveryStatus.FAILED_TEMPORARY}
    assert not any(r.contact_dead for r in results.values())
    assert results[1].retry_after == 30
    assert results[1].detail and "QUOTA_EXCEEDED" in results[1].detail
    assert results[2].retry_after is None
    assert results[3].retry_after is not None and 100 < results[3].retry_after <= 120


def test_fcm_credentials_refused_defer_the_batch(fcm: FakeFcm) -> None:
    """A key the token endpoint does not know: every message deferred, none sent or paced."""
    pacer = CountingPacer()
    stranger = make_service_account(fcm.token_uri)  # never trusted by the fake
    client = fcm_client(fcm, account=stranger, pacer=pacer, concurrency=3)
    results = by_id(asyncio.run(client.send([outbound(n, fcm_token(n)) for n in (1, 2, 3)])))

    assert sorted(results) == [1, 2, 3]
    assert {r.status for r in results.values()} == {DeliveryStatus.DEFERRED}
    for result in results.values():
        assert result.detail and "refused our credentials" in result.detail
        assert "invalid_grant" in result.detail
    assert fcm.token_requests == 1  # the refusal is believed, not retried per message
    assert fcm.send_requests == 0
    assert pacer.waits == 0


def test_fcm_a_project_we_may_not_use_defers_the_batch(fcm: FakeFcm) -> None:
    """403 PERMISSION_DENIED is about our account, not the person: deferred, not dead."""
    account = dict(fcm.service_account(), project_id="someone-elses-project")
    results = asyncio.run(
        fcm_client(fcm, account=account, concurrency=1).send(
            [outbound(n, fcm_token(n)) for n in (1, 2, 3)]
        )
    )
    assert {r.status for r in results} == {DeliveryStatus.DEFERRED}
    assert not any(r.contact_dead for r in results)
    assert fcm.send_requests == 1  # the rest of the batch was not tried
    assert fcm.accepted == []


def test_fcm_a_wrong_base_url_defers_rather_than_killing_every_token(fcm: FakeFcm) -> None:
    """A 404 that is not FCM's (no FCM error body) is our URL's fault: deferred, not dead."""
    client = FcmClient(fcm.service_account(), base_url=f"{fcm.url}/fcm", concurrency=1)
    results = asyncio.run(client.send([outbound(n, fcm_token(n)) for n in (1, 2)]))

    assert {r.status for r in results} == {DeliveryStatus.DEFERRED}
    assert not any(r.contact_dead for r in results)
    assert all(r.detail and "base URL" in r.detail for r in results)


def test_fcm_unreachable_defers_the_batch(fcm: FakeFcm) -> None:
    """No connection to FCM (or to its token endpoint): nothing sent, all deferred."""
    dead_url = f"http://127.0.0.1:{unused_port()}"
    batch = [outbound(n, fcm_token(n)) for n in (1, 2)]
    no_fcm = FcmClient(fcm.service_account(), base_url=dead_url, timeout=2.0)
    no_oauth = FcmClient(make_service_account(f"{dead_url}/token"), base_url=fcm.url)

    for client in (no_fcm, no_oauth):
        results = asyncio.run(client.send(batch))
        assert {r.status for r in results} == {DeliveryStatus.DEFERRED}
        assert all(r.detail and "unreachable" in r.detail for r in results)
    assert fcm.accepted == []


# --- Web Push ------------------------------------------------------------------------------


def test_webpush_delivers_what_we_sent_encrypted_and_signed(
    push_service: FakePushService,
) -> None:
    """The device decrypts exactly our JSON; the VAPID signature, aud, sub and TTL check out."""
    subscription = push_service.subscribe()
    msg = outbound(1, subscription.recipient)
    [result] = asyncio.run(webpush_client().send([msg]))

    assert push_service.rejections == []
    assert result.status is DeliveryStatus.SENT
    assert result.provider_message_id
    assert result.provider_message_id.startswith(f"{push_service.url}/m/")
    [delivery] = push_service.deliveries
    assert delivery.subscription_id == subscription.id
    assert delivery.payload == {
        "title": msg.subject,
        "body": SHORT,
        "link": LINK,
        "notice_id": msg.message_id,
    }
    assert delivery.ttl == 24 * 3600
    assert delivery.vapid_key == VAPID_PUBLIC
    assert delivery.vapid_claims["aud"] == push_service.url
    assert delivery.vapid_claims["sub"] == SUBJECT
    assert delivery.headers["content-encoding"] == "aes128gcm"


def test_webpush_accepts_an_operator_pem_key(push_service: FakePushService) -> None:
    """A VAPID key kept as PEM signs too; the service sees the matching public key."""
    vapid = Vapid()
    vapid.generate_keys()
    pem = vapid.private_pem().decode()
    public = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    push_service.application_server_key = None
    [result] = asyncio.run(
        webpush_client(vapid_private_key=pem).send(
            [outbound(1, push_service.subscribe().recipient)]
        )
    )
    assert result.status is DeliveryStatus.SENT
    [delivery] = push_service.deliveries
    assert delivery.vapid_key == b64url(public)


def test_webpush_gone_subscriptions_are_permanent_and_dead(push_service: FakePushService) -> None:
    """404, 410 and an endpoint the service never issued: dead; 413 is permanent, not dead."""
    subs = {n: push_service.subscribe() for n in (1, 2, 3, 4)}
    push_service.replies[subs[1].id] = 404
    push_service.replies[subs[2].id] = 410
    push_service.replies[subs[3].id] = 413
    never_issued = json.loads(subs[4].recipient)
    never_issued["endpoint"] = f"{push_service.url}/push/unknown-subscription"
    batch = [outbound(n, subs[n].recipient) for n in (1, 2, 3)]
    batch.append(outbound(4, json.dumps(never_issued)))
    results = by_id(asyncio.run(webpush_client().send(batch)))

    for n in (1, 2, 4):
        assert results[n].status is DeliveryStatus.FAILED_PERMANENT
        assert results[n].contact_dead
        assert results[n].detail and results[n].detail.startswith("push subscription expired")
    assert results[3].status is DeliveryStatus.FAILED_PERMANENT
    assert not results[3].contact_dead
    assert push_service.deliveries == []


def test_webpush_throttling_and_errors_are_temporary(push_service: FakePushService) -> None:
    """429 with Retry-After and a 500: retried later; the contact stays alive."""
    throttled, failing = push_service.subscribe(), push_service.subscribe()
    push_service.replies[throttled.id] = 429
    push_service.retry_after[throttled.id] = "60"
    push_service.replies[failing.id] = 500
    batch = [outbound(1, throttled.recipient), outbound(2, failing.recipient)]
    results = by_id(asyncio.run(webpush_client().send(batch)))

    assert results[1].status is results[2].status is DeliveryStatus.FAILED_TEMPORARY
    assert results[1].retry_after == 60
    assert results[2].retry_after is None
    assert not results[1].contact_dead and not results[2].contact_dead


def test_webpush_with_another_vapid_key_is_refused() -> None:
    """A subscription made for another application server key: 403, not delivered."""
    _, other_public = generate_vapid_keys()
    with FakePushService(application_server_key=other_public) as service:
        [result] = asyncio.run(webpush_client().send([outbound(1, service.subscribe().recipient)]))
        assert result.status is DeliveryStatus.FAILED_PERMANENT
        assert "403" in (result.detail or "")
        assert service.deliveries == []
        assert service.rejections == ["403 VAPID key does not match the subscription's"]


def test_webpush_unreachable_endpoint_fails_only_that_message(
    push_service: FakePushService,
) -> None:
    """One push service down says nothing about the others: temporary for that one alone."""
    offline = json.loads(push_service.subscribe().recipient)
    offline["endpoint"] = f"http://127.0.0.1:{unused_port()}/push/abc"
    batch = [outbound(1, json.dumps(offline)), outbound(2, push_service.subscribe().recipient)]
    results = by_id(asyncio.run(webpush_client().send(batch)))

    assert results[1].status is DeliveryStatus.FAILED_TEMPORARY
    assert results[1].detail and "unreachable" in results[1].detail
    assert results[2].status is DeliveryStatus.SENT


# --- routing, configuration, privacy -------------------------------------------------------


def test_a_mixed_batch_goes_to_each_provider_and_is_paced_per_request(
    fcm: FakeFcm, push_service: FakePushService
) -> None:
    """Tokens go to FCM, subscriptions to their push service; one pacer wait per request,
    and Web Push's requests depart from their threads on their slots."""
    pacer = CountingPacer()
    notifier = PushNotifier(
        fcm_service_account=fcm.service_account(),
        fcm_base_url=fcm.url,
        vapid_private_key=VAPID_PRIVATE,
        vapid_subject=SUBJECT,
        concurrency=3,
        pacer=pacer,
    )
    subs = [push_service.subscribe() for _ in range(3)]
    batch = [outbound(n, fcm_token(n)) for n in (1, 2, 3)]
    batch += [outbound(n, sub.recipient) for n, sub in zip((4, 5, 6), subs, strict=True)]
    results = by_id(asyncio.run(notifier.send(batch)))

    assert sorted(results) == [1, 2, 3, 4, 5, 6]
    assert {r.status for r in results.values()} == {DeliveryStatus.SENT}
    assert sorted(m["token"] for m in fcm.accepted) == sorted(fcm_token(n) for n in (1, 2, 3))
    assert sorted(d.subscription_id for d in push_service.deliveries) == sorted(s.id for s in subs)
    assert pacer.waits == fcm.send_requests + push_service.requests == 6
    # Web Push sends from a thread: each request departs there on a slot of its own wait.
    assert len(set(pacer.departed)) == push_service.requests
    assert set(pacer.departed) <= {float(n) for n in range(1, 7)}


def test_an_unconfigured_provider_is_a_permanent_failure_with_a_clear_reason(
    fcm: FakeFcm, push_service: FakePushService
) -> None:
    """No VAPID key: subscriptions fail permanently (contact alive); FCM still sends."""
    subscription = push_service.subscribe().recipient
    fcm_only = PushNotifier(fcm_service_account=fcm.service_account(), fcm_base_url=fcm.url)
    results = by_id(
        asyncio.run(fcm_only.send([outbound(1, fcm_token(1)), outbound(2, subscription)]))
    )
    assert results[1].status is DeliveryStatus.SENT
    assert results[2].status is DeliveryStatus.FAILED_PERMANENT
    assert results[2].detail == "web push is not configured"
    assert not results[2].contact_dead

    webpush_only = PushNotifier(vapid_private_key=VAPID_PRIVATE, vapid_subject=SUBJECT)
    results = by_id(
        asyncio.run(webpush_only.send([outbound(1, fcm_token(1)), outbound(2, subscription)]))
    )
    assert results[1].status is DeliveryStatus.FAILED_PERMANENT
    assert results[1].detail == "FCM is not configured"
    assert results[2].status is DeliveryStatus.SENT
    assert asyncio.run(PushNotifier().send([])) == []


def test_details_never_quote_a_token_or_a_subscription(
    fcm: FakeFcm, push_service: FakePushService
) -> None:
    """Every failure's detail is free of tokens, endpoints, subscription ids and keys."""
    tokens = [fcm_token(n) for n in range(1, 6)]
    for token, reply in zip(
        tokens,
        [
            FcmReply.unregistered(),
            FcmReply.invalid_token(),
            FcmReply.sender_mismatch(),
            FcmReply.quota_exceeded(),
            FcmReply.unavailable(),
        ],
        strict=True,
    ):
        fcm.replies[token] = reply
    subs = [push_service.subscribe() for _ in range(5)]
    for sub, status in zip(subs, [404, 410, 413, 429, 500], strict=True):
        push_service.replies[sub.id] = status
    recipients = [*tokens, *(s.recipient for s in subs)]
    recipients.append("short token")  # malformed: refused before any request
    recipients.append('{"endpoint": "ftp://push.example/x", "keys": {}}')
    notifier = PushNotifier(
        fcm_service_account=fcm.service_account(),
        fcm_base_url=fcm.url,
        vapid_private_key=VAPID_PRIVATE,
    )
    batch = [outbound(n, r) for n, r in enumerate(recipients, start=1)]
    results = asyncio.run(notifier.send(batch))

    assert len(results) == len(batch)
    assert DeliveryStatus.SENT not in {r.status for r in results}
    # Fragments too: a detail quoting part of a token or endpoint leaks it just the same.
    secrets = ["APA91b", "short token", "push.example", "/push/", "127.0.0.1"]
    secrets += [token[:8] for token in tokens]
    for sub in subs:
        secrets += [sub.id[:8], sub.keys.p256dh[:8], sub.keys.auth[:8]]
    for result in results:
        assert result.detail
        for secret in secrets:
            assert secret not in result.detail


# --- contacts ------------------------------------------------------------------------------


def test_valid_push_contacts_are_normalized() -> None:
    """Tokens pass as they are; a subscription keeps endpoint and unpadded keys only."""
    keys = SubscriberKeys.generate()
    subscription = {
        "endpoint": "https://fcm.googleapis.com/fcm/send/eXaMpLe:APA91bH",
        "expirationTime": None,
        "keys": {"p256dh": keys.p256dh + "=", "auth": keys.auth + "=="},
    }
    normal = validate_push_contact("  " + json.dumps(subscription) + "\n")
    assert json.loads(normal) == {
        "endpoint": subscription["endpoint"],
        "keys": {"p256dh": keys.p256dh, "auth": keys.auth},
    }
    assert push_kind(normal) == "webpush"
    assert validate_push_contact(f" {fcm_token(1)} ") == fcm_token(1)
    assert push_kind(fcm_token(1)) == "fcm"
    local = dict(subscription, endpoint="http://127.0.0.1:8080/push/x")
    assert json.loads(validate_push_contact(json.dumps(local)))["endpoint"] == local["endpoint"]


def _subscription(**changes: object) -> str:
    keys = SubscriberKeys.generate()
    data: dict[str, object] = {
        "endpoint": "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABsecret",
        "keys": {"p256dh": keys.p256dh, "auth": keys.auth},
    }
    data.update(changes)
    return json.dumps(data)


GOOD_P256DH = SubscriberKeys.generate().p256dh
OFF_CURVE = b64url(b"\x04" + b"\x01" * 64)  # the right length, but no point of P-256


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("abc:APA91", "16 to 4096 characters"),
        ("dK0001xQ:APA91b Fq3z_x-9Fq3z_x-9", "without spaces"),
        ("dK0001xQ:APA91b-ünïcode-Fq3z_x-9", "printable ASCII"),
        ("{not json at all secret", "not valid JSON"),
        ('{"keys": {"secret": 1}}', "no endpoint"),
        (_subscription(endpoint="http://push.example/secret"), "must be an https URL"),
        (_subscription(endpoint="https:///secret"), "no host"),
        (_subscription(keys=None), "no 'keys' object"),
        (_subscription(keys={"p256dh": "c2VjcmV0", "auth": "x"}), "not 65 bytes"),
        (_subscription(keys={"p256dh": OFF_CURVE, "auth": "x"}), "not a P-256"),
        (_subscription(keys={"p256dh": GOOD_P256DH, "auth": "a+b/secret"}), "not base64url"),
        (_subscription(keys={"p256dh": GOOD_P256DH, "auth": "c2VjcmV0"}), "not 16 bytes"),
    ],
)
def test_invalid_push_contacts_are_refused_without_quoting_them(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as caught:
        validate_push_contact(value)
    assert "secret" not in str(caught.value)
    assert "APA91" not in str(caught.value)


def test_bad_configuration_is_refused_when_the_notifier_is_built() -> None:
    """A broken key or subject fails at construction, not once per person mid-run."""
    with pytest.raises(ValueError, match="VAPID private key"):
        PushNotifier(vapid_private_key="not-a-key")
    with pytest.raises(ValueError, match="VAPID subject"):
        PushNotifier(vapid_private_key=VAPID_PRIVATE, vapid_subject="security team")
    account = make_service_account("http://127.0.0.1:9/token")
    with pytest.raises(ValueError, match="no 'client_email'"):
        PushNotifier(fcm_service_account=dict(account, client_email=""))
    with pytest.raises(ValueError, match="not a PEM key") as caught:
        PushNotifier(fcm_service_account=dict(account, private_key="-----BEGIN junk"))
    assert "junk" not in str(caught.value)
