"""A permutation test of learning vs memorization with a shallow classifier on a network's features (Chaibub Neto
2018, "Detecting Learning vs Memorization in Deep Neural Networks using Shared Structure Validation Sets", arXiv
1802.07714). Pure functions on torch tensors, CPU or GPU; randomness only from a generator the caller passes; no
import-time work. A bad argument raises ``ValueError`` naming the parameter, its value and what is allowed.

Protocol (the abstract's, papers.md §5; the details are reconstructed — the PDF was not checked)
    A shallow classifier is trained on features ``X`` ``(n, d)`` of the training examples (a network's last hidden
    layer) once with the real labels ``y`` and ``B`` times with shuffled labels ``y∘π_b`` (π_b a uniform random
    permutation, :func:`permuted_labels`). Each classifier is evaluated on a validation set; the real-label
    accuracy ``a₀`` is compared with the null distribution ``a₁ … a_B`` by the permutation p-value with the +1
    correction (:func:`permutation_p_value`; Phipson & Smyth 2010 — the observed labelling counts as one of the
    permutations, so p is never 0)

        p = (1 + #{b : a_b ≥ a₀}) / (1 + B)      ∈ [1/(1+B), 1].

The shallow classifier: multinomial logistic regression with an L2 penalty (:func:`fit_softmax`)
    For one labelling ``y`` of ``n`` examples in ``K`` classes, weights ``W`` ``(K, d)`` and intercepts ``b``
    ``(K,)`` minimise

        f(W, b) = (1/n) Σᵢ [log Σ_k exp(w_k·xᵢ + b_k) − (w_{yᵢ}·xᵢ + b_{yᵢ})] + ‖W‖²_F / (2 C n),

    the objective of scikit-learn's ``LogisticRegression(C=C)`` (``lbfgs``, multinomial for K > 2, intercept not
    penalised: scikit-learn's ``C Σᵢ log-loss + ½‖W‖²`` divided by ``C n``, the scaling its L-BFGS uses).
    f is invariant to adding one constant to every intercept; the fit reports the intercepts centred to sum 0
    (scikit-learn's choice too), and the penalty makes the weights unique (Σ_k w_k = 0 at the optimum).

    All M = 1 + B labellings share ``X``, so the M problems are solved as ONE batched computation: the logits of
    every model are one matrix product ``[X 1] Θ`` with Θ ``(d+1, M·K)``, the gradients another,
    ``[X 1]ᵀ (softmax − onehot) / n``. Each model runs its own L-BFGS (limited memory ``memory`` pairs, as scipy's
    ``maxcor``; two-loop recursion with the initial scaling γ = sᵀy / yᵀy) with its own backtracking Armijo line
    search (sufficient decrease c₁ = 1e-4, step halved; the first step of a run is 1/‖g‖₁ capped at 1, as scipy's);
    every step is taken for all still-running models at once, and a model leaves the batch once its gradient's
    largest entry is ≤ ``tol`` (scipy's ``gtol``, which scikit-learn sets to its ``tol``). A curvature pair with
    sᵀy ≤ 1e-10·yᵀy is not stored. In float32 a trial step is also accepted when it is no worse than the current
    objective up to 16 machine epsilons of it (``f`` then cannot be compared more finely); this cannot
    loosen the stopping rule, which is on the gradient. tests/test_permutation.py checks coefficients and
    accuracies against scikit-learn.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..config import positive_int as _positive_int
from ..config import require as _require

#: scikit-learn's ``LogisticRegression`` default inverse penalty strength.
DEFAULT_C = 1.0
#: Largest gradient entry at which a fit stops (scikit-learn's default ``tol``).
DEFAULT_TOL = 1e-4
#: Curvature pairs L-BFGS keeps (scipy's ``maxcor``).
MEMORY = 10
#: Armijo's sufficient-decrease constant and the most halvings of a step before a model is stopped.
ARMIJO_C1 = 1e-4
MAX_HALVINGS = 40




# ----------------------------------------------------------------------------- labels and p-values

def permuted_labels(y: torch.Tensor, n_perm: int, generator: torch.Generator) -> torch.Tensor:
    """The real labels and ``n_perm`` shuffles of them: ``(1 + n_perm, n)``, row 0 = ``y``, row b = ``y[π_b]`` with
    π_b a uniform random permutation drawn from ``generator`` (each row holds the same multiset of labels)."""
    _require(isinstance(y, torch.Tensor) and y.dim() == 1 and len(y) >= 2, "y", getattr(y, "shape", y),
             "use a 1-D tensor of at least 2 labels")
    n_perm = _positive_int("n_perm", n_perm)
    perms = torch.argsort(torch.rand(n_perm, len(y), generator=generator, device=generator.device), dim=1)
    return torch.cat([y[None], y.to(perms.device)[perms].to(y.device)])


def permutation_p_value(observed, null) -> np.ndarray | float:
    """The permutation p-value with the +1 correction, (1 + #{null ≥ observed}) / (1 + B).

    ``observed`` a number or an array ``(...)``, ``null`` the B null statistics along the last axis ``(..., B)``.
    Returns a float for a scalar ``observed``, else an array ``(...)``. NaN anywhere is refused."""
    obs, nul = np.asarray(observed, dtype=float), np.asarray(null, dtype=float)
    _require(nul.ndim >= 1 and nul.shape[-1] >= 1, "null", nul.shape, "give at least one null statistic (B ≥ 1) "
             "along the last axis")
    _require(nul.shape[:-1] == obs.shape, "null", nul.shape, f"use shape (*observed.shape, B) = {obs.shape + ('B',)}")
    _require(not (np.isnan(obs).any() or np.isnan(nul).any()), "observed/null", "NaN", "give finite statistics")
    p = (1.0 + (nul >= obs[..., None]).sum(-1)) / (1.0 + nul.shape[-1])
    return float(p) if p.ndim == 0 else p


def standardize_features(train: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Each feature centred and scaled by the training set's mean and std (a constant feature — e.g. a dead ReLU —
    becomes 0 everywhere); the same map applied to ``others``. Returns ``(train, *others)``."""
    _require(isinstance(train, torch.Tensor) and train.dim() == 2 and len(train) >= 2, "train",
             getattr(train, "shape", train), "use features (n, d) with n ≥ 2")
    mean, std = train.mean(0), train.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    for i, o in enumerate(others):
        _require(o.dim() == 2 and o.shape[1] == train.shape[1], f"others[{i}]", tuple(o.shape),
                 f"use features (N, {train.shape[1]}) like train")
    return tuple((t - mean) / std for t in (train, *others))


#: Perturbations that make a shared-structure copy of a training input (:func:`shared_structure_copies`).
PERTURBATIONS = ("noise", "dropout")


def shared_structure_copies(x: torch.Tensor, kind: str, size: float, generator: torch.Generator) -> torch.Tensor:
    """A perturbed copy of every input of ``x`` ``(N, ...)`` — the shared-structure ("s-") validation inputs; each
    copy keeps the label its original has in whichever labelling a classifier is trained on.

    ``kind="noise"``: x + size·ε, ε ~ N(0, 1) independently per input value (``size`` in units of the inputs' scale:
    the studies standardize inputs to std 1); ``kind="dropout"``: each input value set to 0 (the mean of
    standardized inputs) independently with probability ``size`` ∈ [0, 1). Draws come from ``generator`` only;
    ``size = 0`` gives exact copies."""
    _require(kind in PERTURBATIONS, "perturbation", kind, f"choose one of {list(PERTURBATIONS)}")
    _require(isinstance(size, (int, float)) and not isinstance(size, bool) and
             (size >= 0 if kind == "noise" else 0 <= size < 1), "perturb_size", size,
             "use a noise std ≥ 0" if kind == "noise" else "use a dropout probability in [0, 1)")
    draw = torch.randn if kind == "noise" else torch.rand
    u = draw(x.shape, generator=generator, device=generator.device).to(x.device, x.dtype)
    return x + size * u if kind == "noise" else torch.where(u < size, torch.zeros_like(x), x)


# ----------------------------------------------------------------------------- batched softmax regression

@dataclasses.dataclass
class SoftmaxFit:
    """M fitted multinomial logistic regressions: ``coef`` ``(M, K, d)`` and ``intercept`` ``(M, K)`` (as
    scikit-learn's ``coef_`` / ``intercept_`` for each model; intercepts sum to 0), per model ``n_iter`` (L-BFGS
    iterations), ``converged`` (largest gradient entry ≤ tol) and ``grad_max`` (that entry at the end), and
    ``objective`` (f at the end)."""

    coef: torch.Tensor
    intercept: torch.Tensor
    n_iter: torch.Tensor
    converged: torch.Tensor
    grad_max: torch.Tensor
    objective: torch.Tensor

    def decision(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every model on shared examples ``x`` ``(N, d)``: ``(M, N, K)``."""
        x = x.to(self.coef.dtype)
        return torch.einsum("nd,mkd->mnk", x, self.coef) + self.intercept[:, None, :]

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted class of every model: ``(M, N)`` (ties to the lowest class, as numpy's argmax)."""
        return self.decision(x).argmax(-1)

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Accuracy of every model ``(M,)`` on ``x`` ``(N, d)`` with labels shared ``(N,)`` or per model ``(M, N)``."""
        pred = self.predict(x)
        _require(y.shape in (pred.shape, pred.shape[1:]), "y", tuple(y.shape),
                 f"use labels ({pred.shape[1]},) shared by the models or ({pred.shape[0]}, {pred.shape[1]}) per model")
        return (pred == y.to(pred.device)).to(self.coef.dtype).mean(-1)


def _loss_grad(x1: torch.Tensor, yt: torch.Tensor, theta: torch.Tensor, lam: float, k: int):
    """Objective ``(m,)`` and gradient ``(P, m)`` of m models ``theta`` ``(P, m)``, P = (d+1)·K, each column the
    row-major ``(d+1, K)`` weights (last row: intercepts), on ``x1 = [X 1]`` ``(n, d+1)`` with labels ``yt``
    ``(n, m)``. Models on the last axis: the reductions over classes run over a middle axis, which torch does
    several times faster on CPU than over a short last one."""
    n, d1 = x1.shape
    m = theta.shape[1]
    z = (x1 @ theta.view(d1, k * m)).view(n, k, m)
    zmax = z.amax(1, keepdim=True)
    e = (z - zmax).exp_()
    s = e.sum(1, keepdim=True)
    lse = (zmax + s.log()).squeeze(1)
    w = theta[:-k]
    f = (lse - z.gather(1, yt[:, None, :]).squeeze(1)).mean(0) + 0.5 * lam * w.pow(2).sum(0)
    p = e.div_(s)
    p.scatter_add_(1, yt[:, None, :], torch.full_like(p[:, :1], -1.0))
    g = (x1.T @ p.view(n, k * m)).view(d1 * k, m).div_(n)
    g[:-k] += lam * w
    return f, g


def fit_softmax(x: torch.Tensor, y: torch.Tensor, num_classes: int | None = None, C: float = DEFAULT_C,
                tol: float = DEFAULT_TOL, max_iter: int = 1000, memory: int = MEMORY,
                precondition: bool = True) -> SoftmaxFit:
    """Fit M multinomial logistic regressions with an L2 penalty on shared features ``x`` ``(n, d)``, one per row of
    labels ``y`` ``(M, n)`` (or ``(n,)`` for one), as one batched L-BFGS computation (see the module docstring).

    ``num_classes`` K (default: the largest label + 1; at least 2), ``C`` the inverse penalty strength
    (scikit-learn's), ``tol`` the largest gradient entry at which a model stops, ``max_iter`` the most iterations,
    ``memory`` the curvature pairs kept. Computed in ``x``'s floating dtype and on its device."""
    _require(isinstance(x, torch.Tensor) and x.dim() == 2 and x.is_floating_point() and len(x) >= 1, "x",
             getattr(x, "shape", x), "use floating-point features (n, d)")
    _require(torch.isfinite(x).all().item(), "x", "non-finite values", "give finite features")
    _require(isinstance(y, torch.Tensor) and y.dim() in (1, 2) and not y.is_floating_point() and
             y.shape[-1] == len(x), "y", getattr(y, "shape", y), f"use integer labels ({len(x)},) or (M, {len(x)})")
    y2 = (y[None] if y.dim() == 1 else y).to(x.device, torch.long)
    _require(len(y2) >= 1 and int(y2.min()) >= 0, "y", "negative labels" if len(y2) else "no models",
             "use labels 0 … K-1 and at least one row")
    k = int(y2.max()) + 1 if num_classes is None else num_classes
    _require(isinstance(k, int) and not isinstance(k, bool) and k >= 2 and int(y2.max()) < k, "num_classes",
             num_classes, f"use an integer ≥ 2 above every label (largest label: {int(y2.max())})")
    _require(isinstance(C, (int, float)) and not isinstance(C, bool) and np.isfinite(C) and C > 0, "C", C,
             "use a positive inverse penalty strength (scikit-learn's default: 1.0)")
    _require(isinstance(tol, (int, float)) and not isinstance(tol, bool) and tol > 0, "tol", tol,
             "use a positive gradient tolerance (scikit-learn's default: 1e-4)")
    max_iter, memory = _positive_int("max_iter", max_iter), _positive_int("memory", memory)

    n, d = x.shape
    mtot = len(y2)
    dtype, device = x.dtype, x.device
    lam = 1.0 / (C * n)
    x1 = torch.cat([x, torch.ones(n, 1, dtype=dtype, device=device)], 1)
    p = (d + 1) * k
    if precondition:
        # H₀ = (X₁ᵀX₁ / (nK) + λ·diag(1, …, 1, 0) + ridge)⁻¹ ⊗ I_K: the inverse Hessian at W = 0 but for its class
        # factor (I − 11ᵀ/K), shared by every model
        gram = x1.T @ x1 / (n * k)
        reg = torch.full((d + 1,), lam, dtype=dtype, device=device)
        reg[-1] = 1e-8 * float(gram.diagonal().mean())
        h0 = torch.linalg.inv(gram + torch.diag(reg))
        h0 = (h0 + h0.T) / 2
        apply_h0 = lambda v: (h0 @ v.reshape(d + 1, -1)).view(v.shape)  # noqa: E731
    else:
        apply_h0 = lambda v: v  # noqa: E731
    # Models on the last axis (see _loss_grad). The live state holds the models still running, compacted when some
    # stop; a stopped model's final values go to the *_out tensors.
    theta_out = torch.zeros(p, mtot, dtype=dtype, device=device)
    f_out = torch.zeros(mtot, dtype=dtype, device=device)
    g_out = torch.zeros(p, mtot, dtype=dtype, device=device)
    n_iter = torch.zeros(mtot, dtype=torch.long, device=device)
    ids = torch.arange(mtot, device=device)
    yt = y2.T.contiguous()  # (n, m)
    theta = theta_out.clone()
    f, g = _loss_grad(x1, yt, theta, lam, k)
    S = torch.zeros(memory, p, mtot, dtype=dtype, device=device)
    Y = torch.zeros_like(S)
    rho = torch.zeros(memory, mtot, dtype=dtype, device=device)  # 0 marks an empty or rejected slot
    gamma = torch.ones(mtot, dtype=dtype, device=device)
    failed = torch.zeros(mtot, dtype=torch.bool, device=device)
    slack = 16 * torch.finfo(dtype).eps if dtype != torch.float64 else 0.0
    for it in range(max_iter + 1):
        stop = (g.abs().amax(0) <= tol) | failed
        if it == max_iter:
            stop[:] = True
        if stop.any():
            done = ids[stop]
            theta_out[:, done], f_out[done], g_out[:, done] = theta[:, stop], f[stop], g[:, stop]
            live = ~stop
            ids, theta, f, g, yt = ids[live], theta[:, live], f[live], g[:, live], yt[:, live]
            S, Y, rho, gamma, failed = S[..., live], Y[..., live], rho[:, live], gamma[live], failed[live]
        if len(ids) == 0:
            break
        # two-loop recursion over the stored pairs, newest first
        q = g.clone()
        alphas = []
        for j in range(min(it, memory)):
            slot = (it - 1 - j) % memory
            a = rho[slot] * (S[slot] * q).sum(0)
            q -= a * Y[slot]
            alphas.append((slot, a))
        r = gamma * apply_h0(q)
        for slot, a in reversed(alphas):
            r += (a - rho[slot] * (Y[slot] * r).sum(0)) * S[slot]
        direction = r.neg_()
        gd = (g * direction).sum(0)
        bad = ~(gd < 0)  # not a descent direction (round-off): fall back to steepest descent
        if bad.any():
            direction[:, bad] = -g[:, bad]
            gd = (g * direction).sum(0)
        step = torch.ones_like(gd) if it or precondition else (1.0 / g.abs().sum(0)).clamp(max=1.0)
        new_f, new_g = f.clone(), g.clone()
        pending = torch.arange(len(ids), device=device)
        for halving in range(MAX_HALVINGS):
            sub = (lambda t: t) if halving == 0 else (lambda t: t[..., pending])  # noqa: E731 - all at first
            ft, gt = _loss_grad(x1, sub(yt), sub(theta) + sub(step) * sub(direction), lam, k)
            ok = ft <= sub(f) + ARMIJO_C1 * sub(step) * sub(gd) + slack * sub(f).abs()
            if halving == 0 and bool(ok.all()):
                new_f, new_g = ft, gt
                pending = pending[:0]
                break
            acc = pending[ok]
            new_f[acc], new_g[:, acc] = ft[ok], gt[:, ok]
            pending = pending[~ok]
            if len(pending) == 0:
                break
            step[pending] *= 0.5
        if len(pending):  # no acceptable step: the model stops where it is (not converged)
            failed[pending] = True
            step[pending] = 0.0
        s = direction.mul_(step)
        yv = new_g - g
        sy, yy = (s * yv).sum(0), (yv * apply_h0(yv)).sum(0)
        keep = sy > 1e-10 * yy
        one = torch.ones_like(sy)
        slot = it % memory
        S[slot], Y[slot] = s, yv
        rho[slot] = torch.where(keep, 1.0 / torch.where(keep, sy, one), torch.zeros_like(sy))
        gamma = torch.where(keep, sy / torch.where(keep, yy, one), gamma)
        theta += s
        f, g = new_f, new_g
        n_iter[ids] += 1
    gmax = g_out.abs().amax(0)
    w = theta_out.T.reshape(mtot, d + 1, k)
    b = w[:, -1]
    return SoftmaxFit(coef=w[:, :-1].transpose(1, 2).contiguous(), intercept=b - b.mean(1, keepdim=True),
                      n_iter=n_iter, converged=gmax <= tol, grad_max=gmax, objective=f_out)
