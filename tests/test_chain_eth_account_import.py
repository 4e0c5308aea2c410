"""eth-account loaded without py_ecc's BLS12-381 modules, and nothing else about it changed.

Each case runs in a fresh interpreter (what is loaded is a property of the whole process); the
stand-ins are checked against the real py_ecc, loaded afterwards in the same process.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.cli_support import ROOT, clean_env


def run_python(code: str) -> dict:
    """Runs ``code`` in a fresh interpreter from the checkout; it prints one JSON object."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean_env(None), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loading_the_accounts_module_leaves_py_ecc_bls_and_bls12_381_unloaded():
    # A hex key signs without eth-account (registry.chain.keysign); anything else it is asked for
    # (here its LocalAccount's key object) loads eth-account, still without the BLS tables.
    seen = run_python(
        "import json, sys\n"
        "from registry.chain.accounts import account_from_key\n"
        "account = account_from_key('0x' + '11' * 32)\n"
        "before = 'eth_account' in sys.modules\n"
        "account._key_obj\n"
        "print(json.dumps({'address': account.address, 'before': before, 'eth_account': 'eth_account' in sys.modules,\n"
        "  'bls': sorted(m for m in sys.modules if m.startswith(('py_ecc.bls', 'py_ecc.bls12_381', 'py_ecc.optimized_bls12_381')))}))"
    )
    assert seen["before"] is False
    assert seen["eth_account"] is True
    assert seen["bls"] == []
    # the key's address as eth-account derives it (private key 0x11...11)
    assert seen["address"] == "0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A"


def test_the_stand_in_group_order_is_py_eccs_and_eth_keyfile_sees_the_same_maximum_key():
    seen = run_python(
        "import json\n"
        "from registry.chain.eth_account_import import BLS12_381_ORDER, load_eth_account\n"
        "load_eth_account()\n"
        "import eth_keyfile.keyfile as keyfile\n"
        "from py_ecc.bls12_381 import curve_order\n"
        "print(json.dumps({'order': BLS12_381_ORDER == curve_order, 'max': keyfile.MAX_V4_PRIVATE_KEY == curve_order - 1}))"
    )
    assert seen == {"order": True, "max": True}


def test_a_version_4_bls_keystore_is_still_written_with_the_real_public_key():
    seen = run_python(
        "import json\n"
        "from registry.chain.eth_account_import import load_eth_account\n"
        "load_eth_account()\n"
        "from eth_keyfile import create_keyfile_json, decode_keyfile_json\n"
        "key = (7).to_bytes(32, 'big')\n"
        "document = create_keyfile_json(key, b'pw', version=4, kdf='pbkdf2', iterations=2)\n"
        "from py_ecc.bls import G2ProofOfPossession\n"
        "print(json.dumps({'pubkey': document['pubkey'] == G2ProofOfPossession.SkToPk(7).hex(),\n"
        "  'decoded': decode_keyfile_json(document, b'pw') == key}))"
    )
    assert seen == {"pubkey": True, "decoded": True}


def test_py_ecc_imported_after_eth_account_is_the_real_package():
    seen = run_python(
        "import json\n"
        "from registry.chain.eth_account_import import load_eth_account\n"
        "load_eth_account()\n"
        "import py_ecc.bls, py_ecc.bls.hash_to_curve, py_ecc.bls12_381\n"
        "print(json.dumps({'class': isinstance(py_ecc.bls.G2ProofOfPossession, type),\n"
        "  'package': hasattr(py_ecc.bls, '__path__'), 'pairing': callable(py_ecc.bls12_381.pairing)}))"
    )
    assert seen == {"class": True, "package": True, "pairing": True}


def test_with_py_ecc_bls_already_loaded_eth_account_is_imported_the_ordinary_way():
    seen = run_python(
        "import json\n"
        "import py_ecc.bls\n"
        "from registry.chain.eth_account_import import load_eth_account\n"
        "load_eth_account()\n"
        "import eth_keyfile.keyfile as keyfile\n"
        "print(json.dumps({'real': keyfile.bls is py_ecc.bls.G2ProofOfPossession}))"
    )
    assert seen == {"real": True}


def test_stand_ins_missing_a_name_eth_keyfile_imports_fall_back_to_the_ordinary_import():
    """What a later eth-keyfile asking py_ecc for another name meets: eth-account still loads, fully."""
    seen = run_python(
        "import json, types\n"
        "import registry.chain.eth_account_import as shim\n"
        "shim._stand_ins = lambda: {'py_ecc.bls': types.ModuleType('py_ecc.bls'), 'py_ecc.bls12_381': types.ModuleType('py_ecc.bls12_381')}\n"
        "eth_account = shim.load_eth_account()\n"
        "import eth_keyfile.keyfile as keyfile, py_ecc.bls\n"
        "print(json.dumps({'account': eth_account.Account.from_key((1).to_bytes(32, 'big')).address,\n"
        "  'real': keyfile.bls is py_ecc.bls.G2ProofOfPossession}))"
    )
    assert seen == {"account": "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf", "real": True}
