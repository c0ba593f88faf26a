"""MLLP over TLS, plain and mutual: a real TLS client sends the corpus and gets the TCP ACKs."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
from mllp_support import LOOPBACK, ack_view, corpus, exchange, mllp_server, msa_code, oru
from tls_support import Certificates, make_certificates

from adapter.service.mllp import tls_context
from adapter.service.mllp_client import MllpClient
from adapter.store import open_store

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def _send_corpus(
    tmp_path: Path, server_tls: ssl.SSLContext | None, client_tls: ssl.SSLContext | None
) -> dict[str, list[tuple[str, ...]]]:
    tmp_path.mkdir()

    async def main() -> dict[str, list[tuple[str, ...]]]:
        store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
        async with mllp_server(store, tls=server_tls) as running:
            client = await MllpClient.connect(LOOPBACK, running.server.port, tls=client_tls)
            answers = {name: await exchange(client, data) for name, data in corpus()}
            await client.close()
        return {name: [ack_view(ack) for ack in acks] for name, acks in answers.items()}

    return asyncio.run(main())


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mutual-tls"])
def test_the_corpus_over_tls_gets_the_acks_it_gets_over_tcp(
    tmp_path: Path, certificates: Certificates, mutual: bool
) -> None:
    """Every fixture file over TLS (with a client certificate when mutual): the same ACKs."""
    plain = _send_corpus(tmp_path / "tcp", None, None)
    server = tls_context(
        certificates.server_cert,
        certificates.server_key,
        certificates.ca if mutual else None,
    )
    over_tls = _send_corpus(
        tmp_path / "tls", server, certificates.client_context(with_certificate=mutual)
    )
    assert over_tls == plain
    assert sum(len(acks) for acks in plain.values()) >= len(corpus())


def test_mutual_tls_refuses_a_client_without_a_certificate(
    tmp_path: Path, certificates: Certificates
) -> None:
    """With a client CA configured, a client showing no certificate gets no answer."""
    server = tls_context(certificates.server_cert, certificates.server_key, certificates.ca)

    async def main() -> str:
        store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
        async with mllp_server(store, tls=server) as running:
            client: MllpClient | None = None
            try:
                client = await MllpClient.connect(
                    LOOPBACK,
                    running.server.port,
                    tls=certificates.client_context(with_certificate=False),
                )
                (ack,) = await client.send(oru("no-cert-1"), timeout=5)
            except (ssl.SSLError, ConnectionError):
                return "refused"
            finally:
                if client is not None:
                    await client.close()
            return msa_code(ack)

    assert asyncio.run(main()) == "refused"


def test_a_plain_tcp_client_gets_nothing_from_a_tls_listener(
    tmp_path: Path, certificates: Certificates
) -> None:
    """An MLLP frame sent in the clear to the TLS port is never taken for a message."""
    server = tls_context(certificates.server_cert, certificates.server_key)

    async def main() -> tuple[bool, int]:
        store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
        async with mllp_server(store, tls=server) as running:
            client = await MllpClient.connect(LOOPBACK, running.server.port)
            try:
                await client.send(oru("clear-1"), timeout=5)
                answered = True
            except (ConnectionError, TimeoutError):
                answered = False
            await client.close()
            return answered, sum(running.store.counts().messages.values())

    assert asyncio.run(main()) == (False, 0)


@pytest.mark.timeout(60)
def test_serve_with_a_certificate_it_cannot_load_is_a_usage_error(tmp_path: Path) -> None:
    """--mllp-tls-cert/--mllp-tls-key naming files that are not there: exit 2, one line."""
    import socket

    from typer.testing import CliRunner

    from adapter.cli import app

    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = str(probe.getsockname()[1])
    result = CliRunner().invoke(
        app,
        [
            *("serve", "--mllp-port", port, "--http-port", "0", "--workers", "0"),
            *("--store", f"sqlite:///{tmp_path / 'store.db'}"),
            *("--mllp-tls-cert", str(tmp_path / "missing.pem")),
            *("--mllp-tls-key", str(tmp_path / "missing.key")),
        ],
        env={"HER2_PIN_CPUS": "false"},
    )
    assert result.exit_code == 2
    assert "MLLP TLS" in result.stderr


@pytest.mark.timeout(60)
def test_a_key_without_its_certificate_is_refused_before_starting(tmp_path: Path) -> None:
    """Only one of the pair: a settings error at once (exit 2)."""
    from typer.testing import CliRunner

    from adapter.cli import app

    result = CliRunner().invoke(
        app, ["serve", "--mllp-tls-key", str(tmp_path / "server.key"), "--workers", "0"]
    )
    assert result.exit_code == 2
    assert "together" in result.stderr
