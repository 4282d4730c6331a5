"""Reference recommenders for recforge's quality benchmark (bench/quality.ts), run in the bench's own venv.

    python references.py JOB.json

The job names a training file of recforge's input contract (user_id,item_id,event_type,rating,timestamp), the
users to recommend for, the items no list may contain, and a list of runs ({id, model, params}). For each run
this script fits the model on the training file and writes the top-k list of every target user to
<outDir>/<id>.csv (user_id,rank,item_id,score), the user's training items and the unavailable items excluded.
Timings (fit, score) go to <outDir>/timings.json. It computes no metric: bench/quality/metrics.ts scores every
model's lists, references and recforge alike, with one implementation. Tuning is done by the caller, which
sends a grid of runs on a validation split and then the chosen configuration on the full training data.

Models (X = the binary user x item matrix of the chosen `signal`: every training row, or, on explicit data,
only ratings >= minRating):
- mostpop: items by the number of users in X.
- itemknn: cosine similarity of X's item columns, each item keeping its `k` most similar items (0: all);
  score(u, i) = sum over the user's items j of sim(j, i).
- als: implicit's AlternatingLeastSquares (Hu, Koren & Volinsky 2008) on X with confidence 1 + alpha * x.
- ease: Steck 2019, B = I - P diag(1/diag(P)) with P = (X'X + lambda I)^-1, diagonal zeroed; the inverse by
  Cholesky in float32 (LAPACK potrf/potri), float64 if float32 is not positive definite.
Deterministic for a given job (ALS is seeded; ties in lists broken by item order of first appearance).
"""

import csv
import json
import os
import sys
import time

import numpy as np
import scipy.linalg as sl
import scipy.sparse as sp
from threadpoolctl import threadpool_info, threadpool_limits


def log(msg):
    print(f"[references] {msg}", file=sys.stderr, flush=True)


class Data:
    def __init__(self, job):
        t0 = time.perf_counter()
        users, items = {}, {}
        u_idx, i_idx, pos = [], [], []
        rule = job["positive"]
        explicit = rule["kind"] == "explicit"
        min_rating = float(rule.get("minRating", 0))
        with open(job["train"], newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = [h.strip().lower() for h in next(reader)]
            cu, ci, cr = header.index("user_id"), header.index("item_id"), header.index("rating")
            for row in reader:
                u = users.setdefault(row[cu], len(users))
                i = items.setdefault(row[ci], len(items))
                u_idx.append(u)
                i_idx.append(i)
                pos.append(1 if not explicit else (1 if row[cr] != "" and float(row[cr]) >= min_rating else 0))
        self.user_ids = list(users)
        self.item_ids = list(items)
        self.user_index = users
        n_u, n_i = len(users), len(items)
        u_idx = np.asarray(u_idx, dtype=np.int32)
        i_idx = np.asarray(i_idx, dtype=np.int32)
        pos = np.asarray(pos, dtype=bool)

        def binary(mask):
            m = sp.csr_matrix(
                (np.ones(int(mask.sum()), dtype=np.float32), (u_idx[mask], i_idx[mask])), shape=(n_u, n_i)
            )
            m.sum_duplicates()
            m.data[:] = 1.0
            return m

        everything = np.ones(len(u_idx), dtype=bool)
        # Lists exclude every item the user has a training row for, whatever the signal a model learns from.
        self.seen = binary(everything)
        self.signals = {"all": self.seen}
        if explicit:
            self.signals["positive"] = binary(pos)
        self.unavailable = np.zeros(n_i, dtype=bool)
        for it in job.get("unavailable", []):
            j = items.get(it)
            if j is not None:
                self.unavailable[j] = True
        targets = [line.strip() for line in open(job["targets"], encoding="utf-8") if line.strip()]
        self.targets = np.asarray([users[t] for t in targets if t in users], dtype=np.int64)
        self.missing_targets = len(targets) - len(self.targets)
        self.load_s = time.perf_counter() - t0
        log(
            f"loaded {len(u_idx)} rows, {n_u} users, {n_i} items, {len(self.targets)} target users "
            f"({self.missing_targets} without training rows) in {self.load_s:.1f}s"
        )


def top_k(data, score_block, k, block=1024):
    """Yields (user index, [(item index, score)]) for every target, seen and unavailable items excluded."""
    out = []
    for start in range(0, len(data.targets), block):
        rows = data.targets[start : start + block]
        s = np.array(score_block(rows), dtype=np.float32, copy=True)
        seen = data.seen[rows]
        s[seen.nonzero()] = -np.inf
        s[:, data.unavailable] = -np.inf
        kk = min(k, s.shape[1])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        for r in range(len(rows)):
            cand = part[r]
            vals = s[r, cand]
            order = np.lexsort((cand, -vals))
            out.append((rows[r], [(int(cand[o]), float(vals[o])) for o in order if np.isfinite(vals[o])]))
    return out


def fit_mostpop(X, _params, _job):
    pop = np.asarray(X.sum(axis=0), dtype=np.float32).ravel()
    return lambda rows: np.broadcast_to(pop, (len(rows), pop.shape[0]))


def fit_itemknn(X, params, _job):
    k = int(params["k"])
    G = (X.T @ X).toarray().astype(np.float32)
    norms = np.sqrt(np.diag(G)).copy()
    norms[norms == 0] = 1.0
    G /= norms[:, None]
    G /= norms[None, :]
    np.fill_diagonal(G, 0.0)
    n = G.shape[0]
    if 0 < k < n:
        # Each item keeps its k most similar items; rows in blocks so argpartition's int64 output stays small.
        for start in range(0, n, 1024):
            blk = G[start : start + 1024]
            drop = np.argpartition(-blk, k, axis=1)[:, k:]
            np.put_along_axis(blk, drop, 0.0, axis=1)
    S = G
    return lambda rows: (X[rows] @ S)


def fit_als(X, params, job):
    from implicit.cpu.als import AlternatingLeastSquares

    # implicit parallelises over users itself; a multi-threaded BLAS inside its threads only oversubscribes
    # (implicit warns about it when the model is created).
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=int(params["factors"]),
            regularization=float(params["regularization"]),
            alpha=float(params["alpha"]),
            iterations=int(params["iterations"]),
            random_state=int(job.get("seed", 42)),
            num_threads=int(job.get("threads", 2)),
            calculate_training_loss=False,
        )
        model.fit(X, show_progress=False)
    uf = np.asarray(model.user_factors)
    itf = np.asarray(model.item_factors)
    return lambda rows: uf[rows] @ itf.T


def fit_ease(X, params, _job):
    lam = float(params["lambda"])
    G = (X.T @ X).toarray().astype(np.float32)
    G[np.diag_indices_from(G)] += lam
    c, info = sl.lapack.spotrf(G, lower=0, clean=1, overwrite_a=1)
    if info == 0:
        P, info = sl.lapack.spotri(c, lower=0, overwrite_c=1)
    if info != 0:
        log(f"ease: float32 Cholesky failed (info {info}); inverting in float64")
        G = (X.T @ X).toarray().astype(np.float64)
        G[np.diag_indices_from(G)] += lam
        P = np.linalg.inv(G).astype(np.float32)
    else:
        # potri fills the upper triangle only.
        P = np.triu(P) + np.triu(P, 1).T
    B = P / (-np.diag(P))[None, :]
    np.fill_diagonal(B, 0.0)
    return lambda rows: (X[rows] @ B)


MODELS = {"mostpop": fit_mostpop, "itemknn": fit_itemknn, "als": fit_als, "ease": fit_ease}


def main(path):
    job = json.load(open(path, encoding="utf-8"))
    k = int(job.get("k", 20))
    out_dir = job["outDir"]
    os.makedirs(out_dir, exist_ok=True)
    data = Data(job)
    timings = []
    for run in job["runs"]:
        model, params = run["model"], run.get("params", {})
        if model not in MODELS:
            raise SystemExit(f"unknown model {model!r} (known: {', '.join(MODELS)})")
        signal = params.get("signal", "all")
        if signal not in data.signals:
            raise SystemExit(f"run {run['id']}: signal {signal!r} not available (have {', '.join(data.signals)})")
        X = data.signals[signal]
        t0 = time.perf_counter()
        scorer = MODELS[model](X, params, job)
        t1 = time.perf_counter()
        lists = top_k(data, scorer, k)
        t2 = time.perf_counter()
        with open(os.path.join(out_dir, f"{run['id']}.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["user_id", "rank", "item_id", "score"])
            for u, recs in lists:
                uid = data.user_ids[u]
                for r, (i, s) in enumerate(recs):
                    w.writerow([uid, r + 1, data.item_ids[i], f"{s:.6g}"])
        timings.append({"id": run["id"], "fit_s": t1 - t0, "score_s": t2 - t1})
        log(f"{run['id']}: fit {t1 - t0:.2f}s, score {t2 - t1:.2f}s")
    import implicit
    import scipy

    env = {
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "implicit": implicit.__version__,
        "blas": [
            {k2: v for k2, v in info.items() if k2 in ("internal_api", "num_threads", "architecture", "version")}
            for info in threadpool_info()
        ],
    }
    with open(os.path.join(out_dir, "timings.json"), "w", encoding="utf-8") as f:
        json.dump(
            {"load_s": data.load_s, "missingTargets": data.missing_targets, "runs": timings, "env": env}, f, indent=1
        )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: references.py JOB.json")
    main(sys.argv[1])
