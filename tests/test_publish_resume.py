"""A publish cut off mid-way (the RPC connection dropped after the node received a transaction, or
before the client saw its receipt) resumes on a re-run: only what is missing is sent, nothing is
claimed twice. Against a real anvil, through a proxy that cuts the connection."""

from __future__ import annotations

import pytest

from registry.chain.errors import RpcUnavailableError
from registry.chain.connection import connect
from registry.chain.registry import Registry
from registry.publish.send import publish_elements
from registry.formats.split import split_model
from registry.storage.blockstore import BlockStore
from tests.publish_support import MODEL, DroppingProxy, funded_account


@pytest.fixture(scope="module")
def element_files(tmp_path_factory):
    split = split_model(MODEL, tmp_path_factory.mktemp("split") / "minilm")
    return [split.out_dir / e.path for e in split.elements]


@pytest.mark.parametrize(
    ("method", "n", "sent_before_cut"),
    [
        ("eth_sendRawTransaction", 3, 3),  # the node got transaction 3, the client never heard back
        ("eth_getTransactionReceipt", 2, None),  # transaction 2 mined, its receipt lost
    ],
)
def test_a_publish_cut_off_mid_batch_resumes_sending_only_what_is_missing(anvil, anvil_registry, element_files, tmp_path, method, n, sent_before_cut):
    account = funded_account(anvil_registry.chain)
    direct = anvil_registry.with_account(account)
    proxy = DroppingProxy(anvil.url, method, n)
    try:
        chain = connect(proxy.url, expected_chain_id=anvil_registry.chain.chain_id)
        through_proxy = Registry(chain, anvil_registry.address, account, anvil_registry.deploy_block)
        store = BlockStore(tmp_path / "blocks")

        with pytest.raises(RpcUnavailableError):
            publish_elements(through_proxy, element_files, store, license="MIT", batch_size=4)
        assert proxy.dropped

        plan = publish_elements(direct, element_files, store, license="MIT", batch_size=4, dry_run=True)
        ids = [r.claim.record_id for r in plan.results]
        on_chain = direct.exists(ids)
        done = sum(on_chain)
        # Whole batches landed, in order; the cut one too when the node had received it.
        assert on_chain == [True] * done + [False] * (len(ids) - done)
        assert done % 4 == 0 and 0 < done < len(ids)
        if sent_before_cut is not None:
            assert done == 4 * sent_before_cut

        proxy.restore()
        resumed = publish_elements(through_proxy, element_files, store, license="MIT", batch_size=4)
        assert len(resumed.present) == done
        assert len(resumed.published) == len(ids) - done
        assert len(resumed.transactions) == -(-(len(ids) - done) // 4)

        # Exactly one claim per element, each event once.
        records = direct.records_by(account.address)
        assert sorted(r.record_id for r in records) == sorted(ids)
        assert direct.exists(ids) == [True] * len(ids)
    finally:
        proxy.close()
