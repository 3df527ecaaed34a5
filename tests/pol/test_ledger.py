"""PoL on the ledger: epoch anchors, verified transition, forged proof, ownership dispute."""

from __future__ import annotations

from contextlib import nullcontext
from types import SimpleNamespace

import pytest

from mltrail.errors import RefusedError
from mltrail.pol.bundle import read_manifest
from mltrail.pol.dispute import Claim, claims_on_ledger, settle
from mltrail.pol.onchain import (
    bundle_for,
    ledger_anchor,
    public_challenge,
    publish_model,
    record_verdict,
)
from mltrail.pol.verifier import plan, verify_bundle
from mltrail.pol.workflows import TrainRequest, train_and_publish
from mltrail.reference import pinned_threads
from mltrail.testing import pol_forgeries as attacks

PW = "pw"
pytestmark = pytest.mark.xdist_group("pol-ledger")  # one chain per module, on one worker


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory):
    """A home with alice (steward + developer), victor (verifier), mallory (developer)."""
    from mltrail.identity import create_identity
    from mltrail.ledger.client import Ledger
    from mltrail.ledger.setup import init_home

    root = tmp_path_factory.mktemp("pol-ledger")
    home = init_home(root / ".mltrail", password=PW)
    with Ledger.open(home, identity="admin", password=PW) as admin:
        for name, roles in {"alice": ["data_steward", "model_developer"],
                            "victor": ["verifier"], "mallory": ["model_developer"]}.items():
            addr = create_identity(home, name, PW)
            for role in roles:
                admin.grant_role(addr, role)
    opened: dict[str, Ledger] = {n: Ledger.open(home, identity=n, password=PW)
                                 for n in ("alice", "victor", "mallory")}
    yield root, opened
    for led in opened.values():
        led.close()


@pytest.fixture(scope="module")
def trained(chain, digits):
    """alice registers the data, trains under the recorder with epoch anchors, publishes:
    the library's workflow, as ``mltrail pol train`` runs it."""
    root, led = chain
    alice = led["alice"]
    with pinned_threads(1):
        pub = train_and_publish(TrainRequest(out=root / "alice", data="digits", epochs=2, k=10,
                                             seed=21, lr=0.05, name="cnn"), alice,
                                lambda _total: nullcontext(lambda _n: None))
    ds = SimpleNamespace(artefact_id=pub["dataset_id"])
    alice.anchor(ds.artefact_id, b"\0" * 32, 1)  # a later block: the public challenge's
    return root / "alice", ds.artefact_id, pub


def test_epoch_roots_are_anchored_as_training_runs(chain, trained) -> None:
    _, led = chain
    bundle, ds_id, pub = trained
    man = read_manifest(bundle)
    events = led["victor"].anchors(ds_id)
    assert len(man.anchors) == 2
    for a in man.anchors:
        ev = next(e for e in events if e.tx_hash == a.tx_hash)
        assert ev.args["root"].hex() == a.root and ev.args["count"] == a.count
        assert ev.args["metadata_digest"] == man.header_digest
        assert ev.actor == led["alice"].address
    assert man.anchors[0].block < man.anchors[1].block  # one per epoch, as it trained
    art = led["victor"].artefact(pub["model_id"])
    assert art.state == "trained" and art.content_digest == man.final_model
    assert art.parents == [ds_id]


def test_verified_proof_moves_the_model_to_verified(chain, trained, digits) -> None:
    _, led = chain
    _, _, pub = trained
    victor = led["victor"]
    bundle = bundle_for(victor, pub["model_id"])  # fetched back from the content store
    challenge, prior, _ = public_challenge(victor, pub["model_id"])
    assert prior == [] and challenge.block == victor.artefact(pub["model_id"]).block + 2
    assert public_challenge(led["mallory"], pub["model_id"])[0] == challenge  # anyone's view
    rep = verify_bundle(bundle, digits, challenge=challenge, expected_model=pub["content_digest"],
                        ledger=victor)
    assert rep.accepted, rep.reasons
    assert rep.init_origin == "ledger" and rep.verifier_seed == challenge.seed
    assert [a.actor for a in rep.anchors] == [led["alice"].address] * 2
    with pytest.raises(RefusedError, match="missing role"):  # only a verifier may
        record_verdict(led["alice"], pub["model_id"], rep)
    res = record_verdict(victor, pub["model_id"], rep)
    assert res["recorded"] and victor.artefact(pub["model_id"]).state == "verified"
    last = victor.history(pub["model_id"])[-1]
    assert last.name == "Transitioned" and last.actor == victor.address
    assert rep.digest().split(":")[1] in str(last.args["evidence_digest"])
    assert victor.home.store.get(res["report_digest"]) == rep.to_json()


def test_forged_proof_is_rejected_on_the_ledger_and_resubmission_is_seen(
        chain, trained, digits) -> None:
    root, led = chain
    bundle, ds_id, _ = trained
    mallory, victor = led["mallory"], led["victor"]
    attacks.interpolation_spoof(root / "forged", bundle, lr=None,
                                anchor=ledger_anchor(mallory, ds_id))
    pub = publish_model(mallory, root / "forged", name="mine", parents=[ds_id])
    mallory.anchor(ds_id, b"\1" * 32, 1)  # any later transaction mines the challenge block
    challenge, prior, _ = public_challenge(victor, pub["model_id"])
    rep = verify_bundle(bundle_for(victor, pub["model_id"]), digits, challenge=challenge,
                        expected_model=pub["content_digest"], ledger=victor)
    assert not rep.accepted
    res = record_verdict(victor, pub["model_id"], rep)
    assert res["recorded"] and res["state"] == "rejected"
    assert victor.artefact(pub["model_id"]).state == "rejected"  # visible to everyone
    last = victor.history(pub["model_id"])[-1]
    assert rep.digest().split(":")[1] in str(last.args["evidence_digest"])
    # re-submission: the same bundle under a new name is a new artefact, with its own
    # challenge; the earlier rejection of the same weights halves the miss rate
    again = publish_model(mallory, root / "forged", name="mine-again", parents=[ds_id])
    with pytest.raises(RefusedError, match="not mined yet"):
        public_challenge(victor, again["model_id"])
    mallory.anchor(ds_id, b"\2" * 32, 1)
    ch2, prior2, others = public_challenge(victor, again["model_id"])
    assert pub["model_id"] in others  # every publication of these weights counts
    assert prior2 == [pub["model_id"]] and ch2.seed != challenge.seed
    rep2 = verify_bundle(bundle_for(victor, again["model_id"]), digits, challenge=ch2,
                         prior_rejections=prior2, ledger=victor)
    assert not rep2.accepted
    man, states = attacks.load_states(bundle)
    once = plan(man, states, 1, None, 0.01, 0.1, 0, prior=0)[2]
    twice = plan(man, states, 1, None, 0.01, 0.1, 0, prior=len(prior2))[2]
    assert twice["effective_miss_rate"] == pytest.approx(0.005) and twice["r"] >= once["r"]
    # alice publishes her honest proof of these weights again: every earlier publication
    # counts, the rejected forgery and the abandoned, never verified re-submission too (a
    # grinder walks away from publications), so the miss rate is halved for each
    alice = led["alice"]
    third = publish_model(alice, bundle, name="cnn-again", parents=[ds_id])
    alice.anchor(ds_id, b"\3" * 32, 1)
    ch3, prior3, others3 = public_challenge(victor, third["model_id"])
    assert prior3 == [pub["model_id"]] and {pub["model_id"], again["model_id"]} <= set(others3)
    rep3 = verify_bundle(bundle_for(victor, third["model_id"]), digits, challenge=ch3,
                         prior_rejections=prior3, publications=others3, ledger=victor,
                         expected_model=third["content_digest"])
    assert rep3.accepted, rep3.reasons
    counted = len(set(prior3) | set(others3))
    assert counted == 3 and rep3.r_rule["effective_miss_rate"] == pytest.approx(0.01 / 8)


def test_anchors_claimed_but_not_on_chain_are_rejected(chain, trained, digits, tmp_path):
    _, led = chain
    bundle, ds_id, _ = trained
    man, states = attacks.load_states(bundle)
    fake = attacks.forge_bundle(tmp_path / "fake", man.header, states,
                                anchor=lambda e, root, n, h: type(man.anchors[0])(
                                    epoch=e, root=root.hex(), count=n, artefact_id=ds_id,
                                    tx_hash="0x" + "00" * 32, block=1, timestamp=1),
                                source=bundle)
    assert fake.anchors[0].artefact_id == ds_id
    rep = verify_bundle(tmp_path / "fake", digits, q=1, r=0, ledger=led["victor"])
    assert not rep.accepted and any("not anchored on the ledger" in r for r in rep.reasons)


def test_dispute_resigned_copy_anchored_later_loses(chain, trained, digits) -> None:
    root, led = chain
    bundle, ds_id, pub = trained
    mallory = led["mallory"]
    # d) mallory re-signs alice's honest proof, re-anchors it (later) and claims the model
    attacks.resign_copy(root / "copy", bundle, mallory.address,
                        anchor=ledger_anchor(mallory, ds_id))
    mine = publish_model(mallory, root / "copy", name="also-mine", parents=[ds_id])
    assert mine["content_digest"] == pub["content_digest"] and mine["model_id"] != pub["model_id"]
    # the copy cannot take over alice's start anchor: it binds her as the prover
    copied = verify_bundle(root / "copy", digits, q=1, r=0, ledger=led["victor"])
    assert not copied.accepted and copied.reasons[0].startswith("init: the start anchor")
    digest, claims = claims_on_ledger(led["victor"], mine["model_id"])
    assert digest == pub["content_digest"]
    owners = {c.claimant for c in claims}
    assert {led["alice"].address, mallory.address} <= owners
    decision = settle(claims, digits, digest, ledger=led["victor"], q=1, r=0)
    assert decision.winner is not None and decision.winner.claimant == led["alice"].address
    assert decision.winner.model_id == pub["model_id"]
    text = "\n".join(decision.reasoning)
    assert "earliest anchored chronology" in text
    rejected = [c for c in claims if c.report is not None and not c.report.accepted]
    assert all(c.claimant == mallory.address for c in rejected)  # a forgery, if one ran
    assert ("REJECTED" in text) == bool(rejected)
    copy = next(c for c in claims if c.model_id == mine["model_id"])
    assert copy.report is not None and not copy.report.accepted


def test_dispute_plain_copy_has_no_chronology_of_its_own(chain, trained, digits) -> None:
    """Copying the bundle byte for byte keeps alice's anchors: they are not mallory's."""
    _, led = chain
    bundle, _, pub = trained
    alice, mallory = led["alice"].address, led["mallory"].address
    claims = [Claim(claimant=mallory, bundle=bundle), Claim(claimant=alice, bundle=bundle)]
    d = settle(claims, digits, pub["content_digest"], ledger=led["victor"], q=1, r=0)
    assert d.winner is not None and d.winner.claimant == alice
    assert claims[0].anchored_epochs == 0 and claims[0].first_anchor is None
    none = settle([Claim(claimant=mallory, bundle=None)], digits, pub["content_digest"],
                  ledger=None)
    assert none.winner is None


def test_dispute_a_claimant_who_published_twice_is_not_tied_with_itself(
        chain, trained, digits) -> None:
    """Two publications of alice's, anchored by the same epoch roots: alice wins, no tie."""
    _, led = chain
    bundle, _, pub = trained
    alice = led["alice"].address
    claims = [Claim(claimant=alice, bundle=bundle, model_id="again", registered_block=90),
              Claim(claimant=alice.lower(), bundle=bundle, model_id="first",
                    registered_block=12)]
    d = settle(claims, digits, pub["content_digest"], ledger=led["victor"], q=1, r=0)
    assert claims[0].first_anchor == claims[1].first_anchor is not None
    assert d.winner is not None and d.winner.model_id == "first", d.reasoning
    assert not any("tie" in line for line in d.reasoning)
    claims[1].claimant = led["mallory"].address  # a rival at the same block is a tie
    d = settle(claims, digits, pub["content_digest"], ledger=None, q=1, r=0)
    assert d.winner is None or d.winner.claimant == alice


def test_a_publishers_rejections_count_against_its_next_proof(chain, trained, digits,
                                                              tmp_path) -> None:
    """Re-forging *other* weights after a rejection (no publication of the same weights
    exists) still halves the miss rate: the publisher's earlier rejections count."""
    _, led = chain
    bundle, ds_id, _ = trained
    mallory, victor = led["mallory"], led["victor"]
    man, states = attacks.load_states(bundle)

    def other_weights(i: int):
        last = {k: v + (i + 1) * 1e-3 if v.is_floating_point() else v
                for k, v in states[-1][0].items()}
        forged = attacks.forge_bundle(tmp_path / f"w{i}", man.header,
                                      [*states[:-1], (last, states[-1][1])], source=bundle)
        pub = publish_model(mallory, tmp_path / f"w{i}", name=f"w{i}", parents=[ds_id])
        assert pub["content_digest"] == forged.final_model != man.final_model
        mallory.anchor(ds_id, bytes([40 + i]) * 32, 1)
        return pub

    first = other_weights(0)
    ch, prior, _ = public_challenge(victor, first["model_id"])
    rep = verify_bundle(bundle_for(victor, first["model_id"]), digits, challenge=ch,
                        prior_rejections=prior, ledger=victor)
    assert not rep.accepted  # the final segment does not replay
    assert record_verdict(victor, first["model_id"], rep)["state"] == "rejected"
    second = other_weights(1)
    ch2, prior2, others2 = public_challenge(victor, second["model_id"])
    assert first["model_id"] in prior2 and first["model_id"] not in others2
    assert first["model_id"] not in public_challenge(victor, second["model_id"],
                                                     by_prover=False)[1]
    rep2 = verify_bundle(bundle_for(victor, second["model_id"]), digits, challenge=ch2,
                         prior_rejections=prior2, ledger=victor, miss_rate=0.01)
    assert rep2.r_rule["effective_miss_rate"] <= 0.01 / 2 ** len(prior2)
    # alice, who was never rejected, is not charged with mallory's rejections
    assert not (set(public_challenge(victor, trained[2]["model_id"])[1]) & set(prior2))


def test_grinding_campaigns_pay_for_every_publication(chain, trained, digits,
                                                      tmp_path) -> None:
    """The adversaries of mltrail.testing.pol_grinding against the default verifier:
    re-publishing the same weights (any route) and re-forging other weights after a
    rejection each halve the miss rate the final verification is held to."""
    import torch

    from mltrail.testing.pol_drift import drift_proof, least_likely
    from mltrail.testing.pol_grinding import ROUTES, grind, reforge

    _, led = chain
    bundle, ds_id, _ = trained
    x, y = digits
    fakes = least_likely(bundle, 1)
    stolen = {k: torch.zeros_like(v) for k, v in attacks.load_states(bundle)[1][-1][0].items()}
    made = iter(range(100))

    def forge(_a: int, folder):
        drift_proof(folder, bundle, stolen, x, y, weight_frac=0.05 + 1e-3 * next(made),
                    segments=fakes)
        return folder

    for route in ROUTES:
        res = grind(led["mallory"], led["victor"], forge(0, tmp_path / route), fakes, digits,
                    ds_id, tmp_path / f"g-{route}", route=route, attempts=3, miss_rate=0.25)
        assert 1 <= res["publications"] <= 3
        assert res["effective_miss_rate"] <= 0.25 / 2 ** (res["publications"] - 1), route
    res = reforge(led["mallory"], led["victor"], forge, digits, ds_id, tmp_path / "rf",
                  attempts=3, miss_rate=0.25)
    # every attempt before the last was rejected, and each rejection counted
    assert res["effective_miss_rate"] <= 0.25 / 2 ** (res["publications"] - 1)
