"""Section "solvers": each solver against the tutorial's own loop for its variant.

On the tutorial's data (n=1000, d=1), each pair starts from the same initial
parameters, with the same epochs and learning rate, and is timed as a whole
call (set-up included) in one process. Both sides get the thread setting the
pipeline gives tiny tensors (torch.set_num_threads(1) via `torch_threads`), so
a ratio measures the code, not thread contention.

The DataLoader pair cannot share a shuffle (the tutorial's RandomSampler draws
more from its generator each epoch than our batch sampler does), so those two
answers are compared with the SGD noise ball as tolerance, and each is also
scored against the closed form.
"""

from functools import partial

import numpy as np
import torch
from torch import nn, optim
from torch.utils.data import DataLoader

from bench import tutorial_reference as tutorial
from bench.harness import BenchConfig, Row, interleave, max_abs_difference
from linreg.data import make_dataset, random_state_after_data
from linreg.devices import torch_threads
from linreg.solvers import SOLVERS
from linreg.solvers._torch import as_tensors, initial_bias_weights, seeded_generator, seeded_linear
from linreg.solvers.torch_dataloader import make_loader
from linreg.specs import DataSpec

# Float32 full-batch loops reach the same point up to rounding; minibatch SGD
# with different shuffles lands anywhere in a noise ball of about this radius.
FULL_BATCH_TOLERANCE = {"numpy_gd": 1e-10}
FLOAT32_TOLERANCE = 1e-5
NOISE_BALL = 5e-3
CLOSED_FORM_TOLERANCE = 1e-3  # the target for minibatch solvers

TARGETS = {
    "torch_autograd": 1.0, "torch_optim": 1.0, "torch_module": 1.0, "torch_sequential": 1.0,
    "torch_dataloader": 3.0, "numpy_sgd": 30.0,
}


def _flat(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def parameters(result) -> np.ndarray:
    """[bias, *weights] of a FitResult, or of a tutorial loop's (bias, weights) pair."""
    if hasattr(result, "coef"):
        return np.array([result.intercept, *result.coef])
    bias, weights = result
    return np.concatenate([_flat(bias), _flat(weights)])


def tutorial_loop(name: str, data, epochs: int):
    """The tutorial's loop for solver `name`, set up to start where the solver starts."""
    x, y = as_tensors(data.x, data.y, "cpu")
    if name == "numpy_gd":
        rng = random_state_after_data(data.spec)
        w, b = rng.standard_normal(data.d), rng.standard_normal(1)
        return partial(tutorial.numpy_gd, data.x, data.y[:, None], w, b, n_epochs=epochs)
    if name in ("torch_autograd", "torch_optim", "torch_module"):
        position = {"torch_autograd": 0, "torch_optim": 1, "torch_module": 2}[name]
        b, w = initial_bias_weights(seeded_generator(data.spec.seed), data.d, "cpu", position)
        lr = SOLVERS[name].defaults.lr
        return partial(getattr(tutorial, name), x, y, b.detach(), w.detach().reshape(-1), lr=lr, n_epochs=epochs)
    if name == "torch_sequential":
        layer = seeded_linear(data.d, seeded_generator(data.spec.seed))
        return partial(tutorial.torch_sequential, x, y, layer.weight.data, layer.bias.data, n_epochs=epochs)

    def dataloader():
        # A fresh generator each call, past the initial draws as the solver's is when it shuffles.
        g = seeded_generator(data.spec.seed)
        layer = seeded_linear(data.d, g)
        return tutorial.torch_dataloader(x, y, layer.weight.data, layer.bias.data, g, n_epochs=epochs)

    return dataloader


def solver_call(name: str, data, epochs: int | None):
    info = SOLVERS[name]
    spec = info.defaults if epochs is None else info.defaults.model_copy(update={"epochs": epochs})
    return partial(info.fit, data, spec)


def full_batch_rows(data, config: BenchConfig) -> list[Row]:
    """numpy_gd and the four full-batch torch solvers, each against its own tutorial loop."""
    rows = []
    for name in ["numpy_gd", "torch_autograd", "torch_optim", "torch_module", "torch_sequential"]:
        epochs = config.epochs or SOLVERS[name].defaults.epochs
        t = interleave(
            {"ours": solver_call(name, data, epochs), "tutorial": tutorial_loop(name, data, epochs)},
            reps=config.fast_reps,
        )
        rows.append(Row(
            section="solvers", case=name, baseline=f"tutorial {name} loop", n=data.n, d=data.d,
            reps=config.fast_reps, ours_s=t["ours"].median, baseline_s=t["tutorial"].median,
            agreement=max_abs_difference(parameters(t["ours"].result), parameters(t["tutorial"].result)),
            tolerance=FULL_BATCH_TOLERANCE.get(name, FLOAT32_TOLERANCE), target=TARGETS.get(name),
        ))
    return rows


def dataloader_step_profile(data, config: BenchConfig, epochs: int = 20) -> dict[str, float]:
    """Microseconds per step of a DataLoader epoch's two halves, timed apart.

    `fetch`: iterating the loader alone (the tutorial's per-sample one, ours);
    `train_step`: forward, loss, zero_grad, backward and step on one batch of 50,
    which every loop with autograd and optim.SGD pays. The best any loader can
    do is a free fetch: (tutorial fetch + step) / step bounds the speed-up.
    """
    x, y = as_tensors(data.x, data.y, "cpu")
    g = seeded_generator(data.spec.seed)
    batch = SOLVERS["torch_dataloader"].defaults.batch_size
    loaders = {
        "tutorial_fetch": DataLoader(tutorial.myDataset(x, y), batch_size=batch, shuffle=True, generator=g),
        "our_fetch": make_loader(x, y, batch, g),
    }
    model = nn.Sequential(seeded_linear(data.d, g))
    loss_fn, optimizer = nn.MSELoss(), optim.SGD(model.parameters(), lr=0.01)
    x_batch, y_batch = x[:batch], y[:batch]
    steps = epochs * len(loaders["our_fetch"])

    def fetch(loader):
        for _ in range(epochs):
            for _ in loader:
                pass

    def train_steps():
        for _ in range(steps):
            loss = loss_fn(y_batch, model(x_batch))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    contenders = {name: partial(fetch, loader) for name, loader in loaders.items()}
    t = interleave({**contenders, "train_step": train_steps}, reps=config.fast_reps)
    return {name: timing.median / steps * 1e6 for name, timing in t.items()}


def with_threads(threads: int, run):
    """`run` under torch.set_num_threads(threads), the setting restored afterwards."""

    def threaded():
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return run()
        finally:
            torch.set_num_threads(before)

    return threaded


def minibatch_rows(data, config: BenchConfig, default_threads: int) -> list[Row]:
    """torch_dataloader and numpy_sgd, both against the tutorial's DataLoader loop, in one rotation.

    The tutorial loop also runs as it does out of the box, at torch's default
    thread count: a row for information, since threads are not code.
    """
    epochs = config.epochs or SOLVERS["torch_dataloader"].defaults.epochs
    closed = parameters(SOLVERS["closed_form"].fit(data, SOLVERS["closed_form"].defaults))
    loop = tutorial_loop("torch_dataloader", data, epochs)
    t = interleave(
        {
            "tutorial": loop,
            "torch_dataloader": solver_call("torch_dataloader", data, epochs),
            "numpy_sgd": solver_call("numpy_sgd", data, epochs),
            "tutorial_default_threads": with_threads(default_threads, loop),
        },
        reps=config.reps,
    )
    tutorial_params = parameters(t["tutorial"].result)
    profile = dataloader_step_profile(data, config)
    bound = (profile["tutorial_fetch"] + profile["train_step"]) / profile["train_step"]
    rows = []
    for name in ["torch_dataloader", "numpy_sgd"]:
        ours = parameters(t[name].result)
        to_closed = max_abs_difference(ours, closed)
        rows.append(Row(
            section="solvers", case=name, baseline="tutorial DataLoader loop", n=data.n, d=data.d,
            reps=config.reps, ours_s=t[name].median, baseline_s=t["tutorial"].median,
            agreement=max_abs_difference(ours, tutorial_params), tolerance=NOISE_BALL, target=TARGETS[name],
            note=(f"distance to the closed form: ours {to_closed:.1e}, the tutorial's "
                  f"{max_abs_difference(tutorial_params, closed):.1e} (≤ {CLOSED_FORM_TOLERANCE:g} asked)"),
            checks={"within 1e-3 of the closed form": to_closed <= CLOSED_FORM_TOLERANCE},
            extra={"ours_to_closed_form": to_closed},
        ))
    rows.append(Row(
        section="solvers", case="torch_dataloader", n=data.n, d=data.d, reps=config.reps,
        baseline=f"tutorial DataLoader loop, torch's default {default_threads} threads",
        ours_s=t["torch_dataloader"].median, baseline_s=t["tutorial_default_threads"].median,
        note=f"the tutorial as it runs out of the box ({default_threads} threads), ours as the pipeline runs it",
    ))
    loader_row = rows[0]
    loader_row.extra["step_profile_us"] = profile
    loader_row.note += (
        f"; per step: tutorial fetch {profile['tutorial_fetch']:.0f} µs, ours {profile['our_fetch']:.0f} µs, "
        f"forward+backward+SGD step {profile['train_step']:.0f} µs, so even a free fetch gains at most {bound:.1f}×"
    )
    return rows


def run(config: BenchConfig) -> list[Row]:
    data = make_dataset(DataSpec(seed=config.seed))
    before = torch.get_num_threads()
    torch.set_num_threads(torch_threads(data.n * data.d))
    optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # the first SGD imports torch._dynamo (~1 s)
    try:
        return full_batch_rows(data, config) + minibatch_rows(data, config, before)
    finally:
        torch.set_num_threads(before)
