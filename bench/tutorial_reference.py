"""The tutorial's own loops, copied here as the benchmark's baseline.

Source: the classic tutorial "linear regression in PyTorch"; this project keeps
a reconstruction of its script (tutorial_reconstructed.py, beside the printed
outputs it reproduces) outside the repository, and nothing here reads it.
Each loop body below is the tutorial's, statement for statement, including
what makes it slow (per-sample `__getitem__` and collate, `model.train()` and
`loss.item()` inside the loop). Only the set-up differs, so that a loop can be
timed against a solver from the same start:

- the data and the initial parameters are arguments instead of globals, and a
  DataLoader takes an explicit `torch.Generator`;
- functions return their final parameters as `(bias, weights)`.

Run as a script (`python bench/tutorial_reference.py`), `main()` is the whole
tutorial from top to bottom, with its own global seeds and prints, which is
what the pipeline benchmark runs against `linreg run`. It seeds global RNG
state on purpose: that is the tutorial's stream.
"""

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, Dataset


def numpy_gd(x, y, w, b, lr=0.01, n_epochs=1000):
    """The NumPy section. x, y: (n, 1) arrays; w, b: (1,) arrays, updated in place as in the tutorial."""
    w, b = w.copy(), b.copy()
    for t in range(n_epochs):
        # step 1: prediction
        y_pred = b + w * x

        # step 2: compute loss
        loss = np.mean((y - y_pred) ** 2)  # noqa: F841 (the tutorial computes it and never reads it)

        # step 3: compute gradients
        dw = -2 * np.mean(x * (y - y_pred))
        db = -2 * np.mean(y - y_pred)

        # step4: update weights and bias
        w -= lr * dw
        b -= lr * db
    return b, w


def torch_autograd(x_tensor, y_tensor, b, w, lr=0.1, n_epochs=1000):
    """The autograd section. b, w: (1,) initial values; leaf copies are made here."""
    b = b.detach().clone().requires_grad_()
    w = w.detach().clone().requires_grad_()
    for t in range(n_epochs):
        # step 1: prediction
        y_hat = b + w * x_tensor

        # step 2: compute loss
        error = y_tensor - y_hat
        loss = torch.mean(error ** 2)

        # step 3: compute gradients (via autograd)
        loss.backward()

        # step 4: update weights and bias
        with torch.no_grad():
            b -= lr * b.grad
            w -= lr * w.grad

        b.grad.zero_()
        w.grad.zero_()
    return b, w


def torch_optim(x_tensor, y_tensor, b, w, lr=0.01, n_epochs=1000):
    """The autograd + loss + optimizer section."""
    b = b.detach().clone().requires_grad_()
    w = w.detach().clone().requires_grad_()
    loss_fn = nn.MSELoss(reduction='mean')
    optimizer = optim.SGD([b, w], lr=lr)

    for t in range(n_epochs):
        # step 1: prediction
        y_hat = b + w * x_tensor

        # step 2: compute loss
        loss = loss_fn(y_tensor, y_hat)

        # step 3: clear old and compute current gradients
        optimizer.zero_grad()  # clear old gradients
        loss.backward()  # compute current gradients

        # step 4: update weights and bias using the specified optimizer (e.g. SGD)
        optimizer.step()
    return b, w


class LinearRegression(nn.Module):
    """The tutorial's module; it takes its initial (b, w) instead of drawing them."""

    def __init__(self, b, w):
        super().__init__()
        # Initialize parameters
        self.b = nn.Parameter(b.detach().clone())
        self.w = nn.Parameter(w.detach().clone())

    def forward(self, x):
        # Forward pass: compute predicted y
        return self.b + self.w * x


def torch_module(x_tensor, y_tensor, b, w, lr=0.01, n_epochs=1000):
    """The object-oriented section."""
    model = LinearRegression(b, w)
    loss_fn = nn.MSELoss(reduction='mean')
    optimizer = optim.SGD(model.parameters(), lr=lr)

    for t in range(n_epochs):
        model.train()

        # step 1: makd prediction (forward pass)
        y_hat = model(x_tensor)

        # step 2: compute loss
        loss = loss_fn(y_tensor, y_hat)

        # step 3: clear old and compute current gradients
        optimizer.zero_grad()  # clear old gradients
        loss.backward()  # compute current gradients

        # step 4: update parameters via an optimizer (e.g. SGD)
        optimizer.step()
    return model.b, model.w


def sequential_model(weight, bias):
    """nn.Sequential(nn.Linear(1, 1)) starting at the given weight (1, 1) and bias (1,)."""
    model = nn.Sequential(nn.utils.skip_init(nn.Linear, 1, 1))
    with torch.no_grad():
        model[0].weight.copy_(weight)
        model[0].bias.copy_(bias)
    return model


def torch_sequential(x_tensor, y_tensor, weight, bias, lr=0.01, n_epochs=1000):
    """The nn.Sequential section, `losses.append(loss.item())` included."""
    model = sequential_model(weight, bias)
    loss_fn = nn.MSELoss(reduction='mean')
    optimizer = optim.SGD(model.parameters(), lr=lr)

    losses = []
    for t in range(n_epochs):
        model.train()

        # step 1: make prediction (forward pass)
        y_hat = model(x_tensor)

        # step 2: compute loss
        loss = loss_fn(y_tensor, y_hat)
        losses.append(loss.item())

        # step 3: clear old and compute current gradients
        optimizer.zero_grad()  # clear old gradients
        loss.backward()  # compute current gradients

        # step 4: update parameters via an optimizer (e.g. SGD)
        optimizer.step()
    return model[0].bias, model[0].weight


class myDataset(Dataset):
    """The tutorial's Dataset: one (x[i], y[i]) pair per `__getitem__`."""

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __getitem__(self, index):
        return self.x[index], self.y[index]

    def __len__(self):
        return len(self.x)


def torch_dataloader(x_tensor, y_tensor, weight, bias, generator, lr=0.01, n_epochs=1000, batch_size=50):
    """The Dataset and DataLoader section: per-sample fetch, default collate, shuffled each epoch."""
    device = x_tensor.device
    train_data = myDataset(x_tensor, y_tensor)
    train_loader = DataLoader(train_data, batch_size=batch_size, shuffle=True, generator=generator)

    model = sequential_model(weight, bias).to(device)
    loss_fn = nn.MSELoss(reduction='mean')
    optimizer = optim.SGD(model.parameters(), lr=lr)

    for t in range(n_epochs):
        for x_batch, y_batch in train_loader:
            x_batch = x_batch.to(device)
            y_batch = y_batch.to(device)

            model.train()

            # step 1: make prediction (forward pass)
            y_hat = model(x_batch)

            # step 2: compute loss
            loss = loss_fn(y_batch, y_hat)

            # step 3: clear old and compute current gradients
            optimizer.zero_grad()  # clear old gradients
            loss.backward()  # compute current gradients

            # step 4: update parameters via an optimizer (e.g. SGD)
            optimizer.step()
    return model[0].bias, model[0].weight


def main(n_epochs: int = 1000) -> None:
    """The whole tutorial in its order, with its seeds and prints; plots are drawn, never shown.

    Args:
        n_epochs: epochs of every loop; the tutorial's 1000 unless the smoke test asks for fewer.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.RandomState(42)
    n = 1000
    b0, w0 = 1, 2
    x = rng.standard_normal(size=(n, 1))
    e = 0.1 * rng.standard_normal(size=(n, 1))
    y = b0 + x * w0 + e
    print('true weight:', w0)
    print('true bias:', b0)
    plt.plot(x, y, 'b.')

    w = rng.standard_normal(1)
    b = rng.standard_normal(1)
    print('Initial bias:', b)
    print('Initial weight:', w)
    b, w = numpy_gd(x, y, w, b, n_epochs=n_epochs)
    print('Final bias:', b)
    print('Final weight:', w)
    plt.figure()
    plt.plot(x, y, 'b.')
    plt.plot(x, b + x * w, 'r-')

    torch.manual_seed(42)  # the tutorial's one global seed; every draw below follows it
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    x_tensor = torch.from_numpy(x).float().to(device)
    y_tensor = torch.from_numpy(y).float().to(device)

    b, w = torch_autograd(x_tensor, y_tensor, torch.randn(1, device=device), torch.randn(1, device=device), n_epochs=n_epochs)
    print('Final bias (PyTorch):', b)
    print('Final weight (PyTorch):', w)
    b, w = torch_optim(x_tensor, y_tensor, torch.randn(1, device=device), torch.randn(1, device=device), n_epochs=n_epochs)
    print('Final bias (PyTorch with optim):', b)
    print('Final weight (PyTorch with optim):', w)
    b, w = torch_module(x_tensor, y_tensor, torch.randn(1, device=device), torch.randn(1, device=device), n_epochs=n_epochs)
    print('Final bias (class + PyTorch):', b.item())
    print('Final weight (class + PyTorch):', w.item())

    init = nn.Linear(1, 1)  # draws from the global stream, as the tutorial's nn.Linear does
    b, w = torch_sequential(x_tensor, y_tensor, init.weight.data, init.bias.data, n_epochs=n_epochs)
    print('nn.Sequential:', b.item(), w.item())

    train_data = myDataset(x_tensor, y_tensor)
    print('Length of train_data:', len(train_data))
    print('First item in train_data:', train_data[0])
    init = nn.Linear(1, 1)
    b, w = torch_dataloader(x_tensor, y_tensor, init.weight.data, init.bias.data, generator=None, n_epochs=n_epochs)
    print('DataLoader:', b.item(), w.item())
    plt.close('all')


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="The tutorial, top to bottom.")
    parser.add_argument("--epochs", type=int, default=1000, help="epochs of every loop (default: the tutorial's 1000)")
    main(parser.parse_args().epochs)
