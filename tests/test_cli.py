"""The ``aekit`` command end to end on digits, and every user error as one line with exit status 2."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import abort_lines
import torch

from aekit.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--model", "vae", "--data", "digits", "--epochs", "3", "--latent-dim", "2",
                 "--hidden-dims", "32", "--out", str(out), "--no-progress"]) == 0
    return out


def fails(args, capsys, match):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert match in err, err
    return err


def test_train_writes_a_run_folder(run):
    for name in ("run.json", "metrics.csv", "best/model.safetensors", "best/config.json", "last/trainer_state.pt",
                 "figures/reconstructions.png", "figures/samples.png", "figures/latent.png", "figures/curves.png",
                 "figures/manifold.png", "figures/interpolations.png"):
        assert (run / name).is_file(), name
    info = json.loads((run / "run.json").read_text())
    assert info["model"] == "vae" and info["model_config"]["input_shape"] == [1, 8, 8]


def test_evaluate(run, capsys, tmp_path):
    assert main(["evaluate", str(run), "--k", "20", "--out", str(tmp_path), "--no-figures"]) == 0
    metrics = json.loads((tmp_path / "evaluation.json").read_text())["metrics"]
    for key in ("loss", "reconstruction", "kl", "elbo", "mse", "log_likelihood", "nll_bits_per_dim"):
        assert key in metrics, key
    assert metrics["log_likelihood"] >= metrics["elbo"] - 0.5
    # the ELBO is its two terms from the same draws; a 2-D latent has a KL and an activity per dimension
    assert metrics["elbo"] == pytest.approx(metrics["log_px_given_z"] - metrics["kl"], abs=1e-4)
    assert len(metrics["kl_per_dim"]) == 2 and sum(metrics["kl_per_dim"]) == pytest.approx(metrics["kl"], rel=1e-4)
    assert 0 <= metrics["active_units"] <= 2
    assert "kl_per_dim" in capsys.readouterr().out
    fails(["evaluate", str(run), "--k", "-5", "--out", str(tmp_path / "neg"), "--no-figures"], capsys, "k=-5")
    fails(["evaluate", str(run), "--split", "val", "--out", str(tmp_path), "--no-figures"], capsys, "pass --force")
    assert json.loads((tmp_path / "evaluation.json").read_text())["split"] == "test"   # the earlier one is kept
    assert main(["evaluate", str(run), "--split", "val", "--out", str(tmp_path), "--no-figures", "--force"]) == 0
    assert json.loads((tmp_path / "evaluation.json").read_text())["split"] == "val"


def test_evaluate_density_decoder_gives_8bit_bits_per_dim(capsys, tmp_path):
    """A continuous Bernoulli is a density on [0, 1]: its bits/dim for 8-bit data add log2(256) = 8 per value."""
    out = tmp_path / "cb"
    assert main(["train", "--model", "vae", "--data", "digits", "--epochs", "1", "--latent-dim", "2", "--hidden-dims",
                 "16", "--likelihood", "continuous_bernoulli", "--out", str(out), "--no-progress"]) == 0
    assert main(["evaluate", str(out), "--k", "5", "--no-figures"]) == 0
    m = json.loads((out / "evaluation.json").read_text())["metrics"]
    assert m["log_likelihood_bits_per_dim_8bit"] == pytest.approx(m["nll_bits_per_dim"] + 8.0, abs=1e-6)
    assert m["elbo_bits_per_dim_8bit"] == pytest.approx(m["elbo_bits_per_dim"] + 8.0, abs=1e-6)


def test_unit_interval_decoders_refuse_other_data(capsys, tmp_path):
    np.save(tmp_path / "wide.npy", np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32))
    for lik in ("continuous_bernoulli", "discretized_logistic"):
        fails(["train", "--data", str(tmp_path / "wide.npy"), "--likelihood", lik, "--out", str(tmp_path / lik)],
              capsys, f"likelihood={lik!r} needs data in [0, 1]")
        assert not (tmp_path / lik).exists()


def test_conditional_model_needs_labels_before_writing_anything(capsys, tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((40, 6)).astype(np.float32))
    fails(["train", "--model", "cvae", "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "c")], capsys,
          "is conditioned on labels")
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("extra, match", [
    (["--lr", "nan"], "lr=nan must be a finite number"),
    (["-t", "eps=-1"], "eps=-1.0 must be positive"),
    (["--schedule", "step", "-t", "step_size=0"], "step_size=0 must be positive"),
    (["--schedule", "exponential", "-t", "gamma=-1"], "gamma=-1.0 must be non-negative"),
    (["--device", "foo"], "device='foo' is not a device"),
    (["--beta", "nan"], "beta=nan must be a finite number"),
    (["--architecture", "conv", "-o", "conv_channels=[0]"], "conv_channels=(0,) must be one or more positive"),
    (["-o", "input_shape=[10]"], "the training data has shape (1258, 1, 8, 8); the model takes (N, 10)"),
    (["--likelihood", "gaussian", "--binarize", "dynamic", "--data", "WIDE"], "--binarize dynamic draws each value"),
])
def test_bad_options_stop_before_the_run_folder_is_written(capsys, tmp_path, extra, match):
    np.save(tmp_path / "wide.npy", np.full((40, 6), 5.0, dtype=np.float32))
    extra = [str(tmp_path / "wide.npy") if a == "WIDE" else a for a in extra]
    fails(["train", "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "r"), *extra], capsys, match)
    assert not (tmp_path / "r").exists()


def test_resume_keeps_the_model_and_restarts_a_run_that_never_checkpointed(capsys, tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--data", "digits", "--epochs", "1", "--hidden-dims", "8", "--out", str(out), "--no-progress"]) == 0
    fails(["train", "--resume", "--out", str(out), "-o", "latent_dim=3"], capsys, "-o cannot change it")
    fails(["train", "--resume", "--out", str(out), "--beta", "0"], capsys, "--beta cannot change it")
    for name in ("metrics.csv", "last", "best", "figures"):   # a first sitting that stopped before its first epoch ended
        shutil.rmtree(out / name) if (out / name).is_dir() else (out / name).unlink()
    assert main(["train", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert (out / "last" / "trainer_state.pt").is_file()


def test_resume_of_a_checkpoint_that_no_longer_fits_its_run_record(capsys, tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--data", "digits", "--epochs", "1", "--hidden-dims", "8", "--out", str(out), "--no-progress"]) == 0
    info = json.loads((out / "run.json").read_text())
    info["model_config"]["hidden_dims"] = [9]
    (out / "run.json").write_text(json.dumps(info))
    fails(["train", "--resume", "--out", str(out), "--epochs", "2"], capsys, "does not fit the model being resumed (size mismatch")


def test_datasets_with_a_missing_folder(capsys, tmp_path):
    fails(["datasets", "--data-dir", str(tmp_path / "nowhere")], capsys, "is not a folder")


def test_resume_with_a_damaged_run_record(capsys, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "run.json").write_text("{not json")
    fails(["train", "--resume", "--out", str(out)], capsys, "not a readable run record")
    (out / "run.json").write_text('{"model": "vae"}')
    fails(["train", "--resume", "--out", str(out)], capsys, "lacks data, model_config, train_config")


def test_sample_reconstruct_encode(run, tmp_path, capsys):
    assert main(["sample", str(run), "--n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["sample", str(run), "--n", "5", "--out", str(tmp_path / "s.npy")]) == 0
    assert np.load(tmp_path / "s.npy").shape == (5, 1, 8, 8)
    assert main(["reconstruct", str(run), "--n", "8", "--out", str(tmp_path / "r.png")]) == 0
    assert main(["encode", str(run), "--out", str(tmp_path / "z.npy"), "--labels-out", str(tmp_path / "y.csv")]) == 0
    z = np.load(tmp_path / "z.npy")
    assert z.shape[1] == 2 and np.isfinite(z).all()
    assert main(["encode", str(run), "--out", str(tmp_path / "z.csv")]) == 0
    assert np.loadtxt(tmp_path / "z.csv", delimiter=",", skiprows=1).shape == z.shape
    x = np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["encode", str(run), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "zx.npy")]) == 0
    assert np.load(tmp_path / "zx.npy").shape == (4, 2)


def test_datasets_lists_known_names(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "mnist", "fashion-mnist", "kmnist", "binarized-mnist"):
        assert name in out


@pytest.mark.parametrize("cmd", ["train", "evaluate", "sample", "reconstruct", "encode", "datasets"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert "usage: aekit" in capsys.readouterr().out


def test_unknown_model(capsys, tmp_path):
    fails(["train", "--model", "nope", "--data", "digits", "--out", str(tmp_path / "x")], capsys, "Unknown model 'nope'")


def test_unknown_option(capsys, tmp_path):
    fails(["train", "--data", "digits", "-o", "bogus=1", "--out", str(tmp_path / "x")], capsys, "Unknown option 'bogus'")


def test_argparse_error_is_one_line_status_2():
    p = subprocess.run([sys.executable, "-m", "aekit", "train", "--epochs", "many"], capture_output=True, text=True,
                       env={"PYTHONPATH": SRC, "PATH": ""})
    assert p.returncode == 2 and "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0


def test_missing_data_file(capsys, tmp_path):
    fails(["train", "--data", str(tmp_path / "absent.npy"), "--out", str(tmp_path / "x")], capsys, "absent.npy")


def test_nan_in_data(capsys, tmp_path):
    x = np.random.default_rng(0).random((50, 6)).astype(np.float32)
    x[3, 2] = np.nan
    np.save(tmp_path / "nan.npy", x)
    fails(["train", "--data", str(tmp_path / "nan.npy"), "--out", str(tmp_path / "x")], capsys, "NaN")
    assert not (tmp_path / "x" / "metrics.csv").exists()


def test_outputs_are_checked_before_any_work(run, capsys, tmp_path):
    fails(["sample", str(run), "--out", str(tmp_path / "s.jpg")], capsys, "must end in .png or .npy")
    fails(["reconstruct", str(run), "--data", "digits", "--out", str(tmp_path / "r.txt")], capsys, "must end in .png or .npy")
    for n in ("0", "-5"):
        fails(["reconstruct", str(run), "--data", "digits", "--n", n, "--out", str(tmp_path / "r.npy")], capsys, "must be at least 1")
    fails(["encode", str(run), "--data", "digits", "--out", str(tmp_path / "e.npy"), "--labels-out", str(tmp_path / "e.png")],
          capsys, "must end in .npy or .csv")
    np.save(tmp_path / "plain.npy", np.zeros((4, 64), dtype=np.float32))
    fails(["encode", str(run), "--input", str(tmp_path / "plain.npy"), "--out", str(tmp_path / "e.npy"), "--labels-out",
           str(tmp_path / "l.npy")], capsys, "have no labels")
    (tmp_path / "afile").write_text("x")
    fails(["sample", str(run), "--out", str(tmp_path / "afile" / "s.png")], capsys, str(tmp_path / "afile" / "s.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "plain.npy"]   # nothing written
    assert main(["encode", str(run), "--data", "digits", "--out", str(tmp_path / "e.csv"), "--labels-out", str(tmp_path / "l.csv")]) == 0
    assert (tmp_path / "l.csv").read_text().splitlines()[0] == "label0"
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "e.csv").stat().st_mode & 0o777 == 0o666 & ~umask   # the usual permissions, not mkstemp's 0600


def test_wrong_shape(run, capsys, tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5), dtype=np.float32))
    fails(["encode", str(run), "--input", str(tmp_path / "wrong.npy"), "--out", str(tmp_path / "z.npy")], capsys, "shape")
    assert not (tmp_path / "z.npy").exists()


def test_bernoulli_needs_unit_interval(capsys, tmp_path):
    np.save(tmp_path / "wide.npy", np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32))
    fails(["train", "--data", str(tmp_path / "wide.npy"), "--out", str(tmp_path / "x")], capsys, "[0, 1]")


def test_corrupt_checkpoint(run, capsys, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(run / "best", bad)
    (bad / "model.safetensors").write_bytes(b"\x00" * 20)
    fails(["evaluate", str(bad), "--data", "digits"], capsys, "corrupt")
    fails(["sample", str(tmp_path / "nothing-here")], capsys, "No model or run folder")


def test_existing_outputs_are_not_overwritten(run, capsys, tmp_path):
    before = (run / "metrics.csv").read_text()
    fails(["train", "--data", "digits", "--out", str(run)], capsys, "already exists")
    assert (run / "metrics.csv").read_text() == before
    (tmp_path / "z.npy").write_bytes(b"mine")
    fails(["encode", str(run), "--out", str(tmp_path / "z.npy")], capsys, "already exists")
    assert (tmp_path / "z.npy").read_bytes() == b"mine"


def test_sample_from_non_generative_model(capsys, tmp_path):
    out = tmp_path / "ae"
    assert main(["train", "--model", "ae", "--data", "digits", "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    fails(["sample", str(out), "--out", str(tmp_path / "s.png")], capsys, "not a generative model")


def test_checksum_mismatch(capsys, tmp_path):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        with gzip.open(folder / name, "wb") as f:
            f.write(b"\x00\x00\x08\x03" + b"\x00" * 100)
    fails(["train", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--no-download",
           "--out", str(tmp_path / "x")], capsys, "checksum")
    assert len(list(folder.iterdir())) == 4


def test_resume_from_cli(capsys, tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--model", "ae", "--data", "digits", "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--no-progress"]) == 0
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 3
    assert json.loads((out / "run.json").read_text())["resumed"][0]["after_epoch"] == 1
    assert main(["train", "--resume", "--out", str(out), "--epochs", "3", "--schedule", "cosine", "--no-progress"]) == 0
    sittings = json.loads((out / "run.json").read_text())["resumed"]
    assert [s["after_epoch"] for s in sittings] == [1, 2]
    assert sittings[1]["changed"] == {"epochs": 3, "schedule": "cosine"}  # only what this sitting changed
    fails(["train", "--resume", "--out", str(out), "--epochs", "4", "--lr", "0.5", "--schedule", "none"], capsys,
          "cannot change it")
    fails(["train", "--resume", "--out", str(out), "--epochs", "4", "--threads", "0"], capsys, "at least 1")
    assert len(json.loads((out / "run.json").read_text())["resumed"]) == 2
    # a closed-form schedule is rebuilt from a new --lr: exponential, so pass 4 trains at lr * gamma^3
    assert main(["train", "--resume", "--out", str(out), "--epochs", "4", "--lr", "0.5", "--schedule",
                 "exponential", "-t", "gamma=0.5", "--no-progress"]) == 0
    last = (out / "metrics.csv").read_text().strip().splitlines()
    header, row = last[0].split(","), last[-1].split(",")
    assert float(row[header.index("lr")]) == pytest.approx(0.5 * 0.5 ** 3)
    assert json.loads((out / "run.json").read_text())["resumed"][2]["changed"]["lr"] == 0.5


def test_resume_keeps_dynamic_binarization(capsys, tmp_path, monkeypatch):
    """A resumed run trains on the data as its first sitting did, whatever the flags of this sitting."""
    import aekit.train

    out = tmp_path / "b"
    assert main(["train", "--model", "vae", "--data", "digits", "--scale", "minmax", "--binarize", "dynamic",
                 "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    seen = {}
    real_fit = aekit.train.fit

    def spy(model, x, *args, **kwargs):
        seen["binarize"], seen["max"] = kwargs["binarize"], float(x.max())
        return real_fit(model, x, *args, **kwargs)

    monkeypatch.setattr(aekit.train, "fit", spy)
    assert main(["train", "--resume", "--out", str(out), "--epochs", "2", "--no-progress"]) == 0
    assert seen == {"binarize": True, "max": 1.0}  # min-max scaled as before, and binarized on the fly


def test_torchrun_ddp_two_processes(tmp_path):
    """The same loop under DistributedDataParallel (gloo): only rank 0 writes, ranks stay in sync."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed next to this Python")
    for attempt in range(2):
        # Two gloo processes on a 2-core machine loaded by other jobs once died with SIGABRT; a second
        # attempt in a fresh folder tells such an environmental abort apart from a real failure of the loop.
        out = tmp_path / f"ddp{attempt}"
        p = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "aekit", "train", "--model", "ae", "--data",
                            "digits", "--epochs", "2", "--hidden-dims", "16", "--out", str(out), "--no-progress"],
                           capture_output=True, text=True, env={"PYTHONPATH": SRC, "PATH": "", "OMP_NUM_THREADS": "1"},
                           timeout=300)
        if p.returncode == 0:
            break
    assert p.returncode == 0, abort_lines(p.stderr) + p.stderr[-2000:]
    assert p.stdout.count("epoch 2/2") == 1  # rank 0 alone reports
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3
    from aekit import from_pretrained

    assert from_pretrained(out / "best").config.hidden_dims == (16,)


def _weights(folder):
    from aekit import from_pretrained

    return {k: v.clone() for k, v in from_pretrained(folder).state_dict().items()}


def test_init_starts_from_a_saved_model_with_its_preprocessing_and_new_options(capsys, tmp_path, monkeypatch):
    """--init: the saved weights, its preprocessing and the options given now; the trainer starts afresh."""
    import aekit.train

    first, second = tmp_path / "k2", tmp_path / "k5"
    assert main(["train", "--model", "iwae", "--data", "digits", "--scale", "minmax", "--binarize", "dynamic",
                 "-o", "k=2", "--hidden-dims", "16", "--epochs", "1", "--out", str(first), "--no-progress"]) == 0
    saved = _weights(first / "best")
    seen = {}
    real_fit = aekit.train.fit

    def spy(model, x, *args, **kwargs):
        seen["state"] = {k: v.clone() for k, v in model.state_dict().items()}
        seen["k"], seen["binarize"], seen["max"] = model.config.k, kwargs["binarize"], float(x.max())
        return real_fit(model, x, *args, **kwargs)

    monkeypatch.setattr(aekit.train, "fit", spy)
    # no --model and no --data: both come from the run the model was saved in
    assert main(["train", "--init", str(first), "-o", "k=5", "--epochs", "1", "--lr", "1e-4",
                 "--out", str(second), "--no-progress"]) == 0
    assert seen["k"] == 5 and seen["binarize"] and seen["max"] == 1.0
    assert all(torch.equal(saved[k], seen["state"][k]) for k in saved)
    info = json.loads((second / "run.json").read_text())
    assert info["model"] == "iwae" and info["data"] == "digits" and info["model_config"]["k"] == 5
    assert info["init"]["from"] == str(first / "best") and info["init"]["options"] == {"k": 5}
    assert info["preprocessing"]["scale"] == "minmax" and info["train_config"]["lr"] == 1e-4
    after = _weights(second / "last")
    assert any(not torch.equal(after[k], saved[k]) for k in saved if saved[k].is_floating_point())
    assert int(after["train_step"]) > int(saved["train_step"])   # the model's own step count goes on


@pytest.mark.parametrize("extra,match", [
    (["--latent-dim", "3"], "only options that keep every weight's shape can change (size mismatch"),
    (["--scale", "standardize"], "trained with --scale minmax; a warm start keeps its preprocessing"),
    (["--model", "ae"], "holds a model of kind 'vae', not 'ae'"),
    (["--resume"], "give one or the other"),
    (["-o", "beta=-1"], "beta=-1"),
    (["--data", "WIDE"], "was trained on items of shape (1, 8, 8)"),
])
def test_init_refuses_what_the_saved_model_cannot_take(capsys, tmp_path, extra, match):
    first = tmp_path / "r"
    assert main(["train", "--data", "digits", "--scale", "minmax", "--hidden-dims", "8", "--epochs", "1",
                 "--out", str(first), "--no-progress"]) == 0
    np.save(tmp_path / "wide.npy", np.zeros((40, 6), dtype=np.float32))
    extra = [str(tmp_path / "wide.npy") if a == "WIDE" else a for a in extra]
    out = first if "--resume" in extra else tmp_path / "new"
    fails(["train", "--init", str(first), "--out", str(out), *extra], capsys, match)
    assert not (tmp_path / "new").exists()


def test_a_warm_start_that_stopped_before_its_first_checkpoint_resumes_from_its_saved_model(capsys, tmp_path, monkeypatch):
    import aekit.train

    first, second = tmp_path / "a", tmp_path / "b"
    assert main(["train", "--data", "digits", "--hidden-dims", "8", "--epochs", "1", "--out", str(first), "--no-progress"]) == 0
    assert main(["train", "--init", str(first), "--epochs", "1", "--out", str(second), "--no-progress"]) == 0
    for name in ("metrics.csv", "last", "best", "figures"):
        shutil.rmtree(second / name) if (second / name).is_dir() else (second / name).unlink()
    seen = {}
    real_fit = aekit.train.fit

    def spy(model, x, *args, **kwargs):
        seen["state"] = {k: v.clone() for k, v in model.state_dict().items()}
        return real_fit(model, x, *args, **kwargs)

    monkeypatch.setattr(aekit.train, "fit", spy)
    assert main(["train", "--resume", "--out", str(second), "--no-progress"]) == 0
    saved = _weights(first / "best")
    assert all(torch.equal(saved[k], seen["state"][k]) for k in saved)


def test_init_refits_only_the_vq_vae_prior(capsys, tmp_path):
    """The paper's second stage from the CLI: -o train_prior_only=true changes the PixelCNN alone."""
    first, second = tmp_path / "vq", tmp_path / "prior"
    small = ["-o", "latent_dim=4", "-o", "num_codes=16", "-o", "latent_positions=6", "--hidden-dims", "32",
             "-o", "prior_channels=16", "-o", "prior_layers=3"]
    assert main(["train", "--model", "vqvae", "--data", "digits", *small, "--epochs", "1", "--out", str(first),
                 "--no-progress"]) == 0
    assert main(["train", "--init", str(first), "-o", "train_prior_only=true", "--epochs", "1", "--out", str(second),
                 "--no-progress"]) == 0
    before, after = _weights(first / "best"), _weights(second / "last")
    changed = {k for k in before if before[k].is_floating_point() and not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("prior.") for k in changed), sorted(changed)


def test_init_carries_the_source_runs_labels_split_and_skips_pretraining(capsys, tmp_path, monkeypatch):
    """Review findings: a warm start keeps the semi-supervised label count, reads the same data with
    the source run's split even when --data names it, and does not pretrain trained layers again."""
    m2, again = tmp_path / "m2", tmp_path / "m2b"
    assert main(["train", "--model", "m2", "--data", "digits", "--labels", "50", "--hidden-dims", "8", "--epochs", "1",
                 "--test-fraction", "0.5", "--validation", "0", "--out", str(m2), "--no-progress"]) == 0
    assert main(["train", "--init", str(m2), "--data", "digits", "--epochs", "1", "--out", str(again),
                 "--no-progress"]) == 0
    first, second = (json.loads((d / "run.json").read_text()) for d in (m2, again))
    assert second["labels"] == 50 and second["n_train"] == first["n_train"]
    assert second["test_fraction"] == 0.5 and second["validation"] == 0
    stacked = tmp_path / "s"
    assert main(["train", "--model", "stacked_ae", "--data", "digits", "--hidden-dims", "16", "-o", "pretrain_epochs=1",
                 "--epochs", "1", "--out", str(stacked), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["train", "--init", str(stacked), "--epochs", "1", "--out", str(tmp_path / "s2"), "--no-progress"]) == 0
    assert "pretraining" not in capsys.readouterr().out
    # the source is recorded by its absolute path and must not change before a resume that reloads it
    info = json.loads((again / "run.json").read_text())
    assert Path(info["init"]["from"]).is_absolute()
    for name in ("metrics.csv", "last", "best", "figures"):
        shutil.rmtree(again / name) if (again / name).is_dir() else (again / name).unlink()
    info["init"]["weights_sha256"] = "0" * 64
    (again / "run.json").write_text(json.dumps(info))
    fails(["train", "--resume", "--out", str(again)], capsys, "has changed since")
