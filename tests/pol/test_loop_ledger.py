"""Loop proofs on a ledger: an honest exported proof with the ledger-seeded init reaches
``verified`` with no override; a trusted-code proof does not without the named override;
the verifier's input errors (no --trusted-code, code not found) exit 2 through the CLI and
leave the model's state on chain unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from mltrail.pol.loop import ledger_init, record_loop
from mltrail.pol.onchain import publish_model
from mltrail.provenance.digest import save_state_dict
from mltrail.reference import pinned_threads
from mltrail.testing import pol_loop_adversaries as adv
from mltrail.testing import pol_userloops as loops

pytestmark = pytest.mark.xdist_group("pol-loop-ledger")


def _honest_exported(out: Path, led, ds_id: str) -> Path:
    torch.manual_seed(0)
    model = loops.make_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    data = loops.tabular_data(n=48)
    loader = DataLoader(data, batch_size=16, shuffle=True)
    with pinned_threads(1), record_loop(out, model, opt, loader, loss="cross_entropy",
                                        epochs=2, k=2,
                                        **ledger_init(led, ds_id, model, data)) as rec:
        for _ in range(2):
            for xb, yb in rec.loader:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(xb), yb).backward()
                opt.step()
                rec.step()
    return out


def test_loop_proofs_on_the_ledger(home, open_as, cli, tmp_path: Path) -> None:
    admin, dev = open_as("admin"), open_as("dev")
    admin.grant_role(dev.address, "data_steward")
    data = tmp_path / "data.safetensors"
    tensors = {"x": loops.tabular_data(n=48).tensors["x"],
               "y": loops.tabular_data(n=48).tensors["y"]}
    save_state_dict(tensors, data)
    from mltrail.provenance.digest import digest_state_dict

    ds = dev.register(dev.lifecycle.bound_kind("pol", "data_kind"),
                      digest_state_dict(tensors), metadata={"name": "tab"}).artefact_id
    bundle = _honest_exported(tmp_path / "proof", dev, ds)
    model = publish_model(dev, bundle, name="mlp")["model_id"]
    code = tmp_path / "code"
    trusted = adv.honest(tmp_path / "trusted", code, 0, n=48)
    tmodel = publish_model(dev, trusted, name="mlp-trusted")["model_id"]
    for _ in range(3):  # blocks after publication: the public challenge exists
        dev.anchor(ds, b"\1" * 32, 1)

    def verify(model_id: str, *extra: str):
        return cli("--as", "verifier", "pol", "verify", "--model", model_id, "--data",
                   str(data), *extra, "--json", home=home.root)

    state = lambda m: admin.artefact(m).state  # noqa: E731
    # the verifier's input errors: exit 2, nothing recorded
    res = verify(tmodel)
    assert res.code == 2 and "--trusted-code" in res.err and state(tmodel) == "trained"
    res = verify(tmodel, "--trusted-code", "--code", str(tmp_path))
    assert res.code == 2 and "cannot find module" in res.err and state(tmodel) == "trained"
    res = verify(tmodel, "--trusted-code")  # no --code at all
    assert res.code == 2 and "cannot find module" in res.err and state(tmodel) == "trained"
    # the verifier's own time limit, too short for the replay (a child process that must
    # import torch): nothing judged, so a correct re-verification is still possible
    res = verify(tmodel, "--trusted-code", "--code", str(code), "--accept-trusted-code",
                 "--allow-unseeded", "--timeout", "1")
    assert res.code == 2 and "ran past --timeout" in res.err and state(tmodel) == "trained"
    # a trusted-code proof: accepted, labelled, not verified without the named override
    res = verify(tmodel, "--trusted-code", "--code", str(code))
    assert res.code == 0, res.err
    out = res.json()
    assert out["trusted_code"] and not out["ledger"]["recorded"] and state(tmodel) == "trained"
    res = verify(tmodel, "--trusted-code", "--code", str(code), "--accept-trusted-code",
                 "--allow-unseeded")
    assert res.code == 0 and res.json()["overrides"] == ["accept-trusted-code"]
    assert state(tmodel) == "verified"
    # data that are not the committed bytes: the verifier's input, exit 2, nothing recorded
    wrong = tmp_path / "wrong.safetensors"
    save_state_dict({"x": tensors["x"] + 1, "y": tensors["y"]}, wrong)
    res = cli("--as", "verifier", "pol", "verify", "--model", model, "--data", str(wrong),
              home=home.root)
    assert res.code == 2 and "not the committed" in res.err and state(model) == "trained"
    # the exported proof with the ledger's init seed: verified with no override at all
    res = verify(model)
    assert res.code == 0, res.err
    out = res.json()
    assert out["init_origin"] == "ledger" and not out["trusted_code"], out["checks"]
    assert out["ledger"]["recorded"] and state(model) == "verified"
