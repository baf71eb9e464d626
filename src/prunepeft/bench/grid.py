"""The grid of a benchmark config (`prunepeft bench --config benchmarks/NAME.yaml`): methods x tasks x seeds, one
run per folder, each run's `prunepeft` command line, and which runs have finished (running them: ``bench.run``;
the table and plots: ``bench.table``).

Config keys: name, model, tasks, seeds, common (flags for every run), jobs (runs at once; the cores are shared
out among them), tune_seeds (the seeds on which learning rates are compared; default: all seeds), output,
headline (a method compared seed by seed with every other in the table), defaults_of (a prunepeft version: every
run is written with that version's defaults where they have changed since, ``FORMER_DEFAULTS``, so that a config
measured under former defaults keeps meaning what it measured; a method's own defaults_of overrides it, and
``current`` means today's defaults), and
methods: a mapping method name -> {command: search|train, flags: {...}, learning_rates: [...] (optionally
with variants: {NAME: {flags}, ...}), or learning_rate_from: METHOD, curve: NAME, tasks: [...] (a method
that runs on some of the config's tasks only) and seeds: [...] (a method at a fixed rate that runs on some of the
seeds only)}.

A search whose budget is a list (`budget: "2%,1%,0.5%"`) is one run that gives a configuration per budget: the
table has a row per budget (`METHOD@BUDGET`), and the plot draws its curve. Methods sharing a `curve` name (peft
LoRA at several ranks, say) are drawn as one line too, and their points go into each multi-budget run's report
(reference.json) for the same task and seed.

The setting of a method with `learning_rates` (its rate, crossed with its variants if it has any) is chosen per
task by its mean validation metric over the tune seeds, never on test; the other seeds then run at that setting.
A method with `learning_rate_from` runs at the setting chosen for that method, variant flags included (the search
ablations share the setting of the search they ablate).

A run counts as finished once its results.json has been copied to benchmarks/results/NAME/runs/ with this very
command line (``finished``); ``bench.run`` runs only the others, so a committed benchmark resumes on any machine.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics

from prunepeft.common.config import require

KEYS = {
    "name", "model", "tasks", "seeds", "common", "methods", "output", "jobs", "tune_seeds", "headline", "defaults_of"
}  # fmt: skip
METHOD_KEYS = {
    "command", "flags", "learning_rates", "learning_rate_from", "variants", "curve", "tasks", "seeds", "defaults_of"
}  # fmt: skip


def _flags(mapping: dict) -> list[str]:
    out = []
    for key, value in mapping.items():
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            out.append(flag)
        elif value is not False and value is not None:  # 0 is a value
            out += [flag, str(value)]
    return out


class Grid:
    """The runs of one benchmark config, and where their results live."""

    def __init__(self, config: dict, name: str, root: str, results_dir: str):
        unknown = set(config) - KEYS
        require(not unknown, f"bench config: unknown keys {sorted(unknown)}; known: {sorted(KEYS)}.")
        require(bool(config.get("methods")), "bench config: 'methods' is empty.")
        self.config, self.name, self.root, self.results_dir = config, name, root, results_dir
        self.methods = {m: spec or {} for m, spec in config["methods"].items()}
        self.seeds = list(config.get("seeds", [0]))
        self.tune_seeds = list(config.get("tune_seeds", self.seeds))
        require(bool(self.seeds) and bool(self.tune_seeds), "bench config: seeds and tune_seeds must not be empty.")
        require(set(self.tune_seeds) <= set(self.seeds), "bench config: tune_seeds must be among seeds.")
        labels = [_label(t) for t in config.get("tasks", ["rotten_tomatoes"])]
        require(len(set(labels)) == len(labels), f"bench config: two tasks share a name ({labels}); rename a file.")
        for method, spec in self.methods.items():
            bad = set(spec) - METHOD_KEYS
            require(not bad, f"bench config: {method} has unknown keys {sorted(bad)}; known: {sorted(METHOD_KEYS)}.")
            require(spec.get("command", "train") in ("search", "train"),
                    f"bench config: {method}.command must be search or train.")  # fmt: skip
            if "learning_rates" in spec:  # YAML reads 1e-3 as a string; 1.0e-3 as a number
                try:
                    spec["learning_rates"] = [float(x) for x in spec["learning_rates"]]
                except (TypeError, ValueError):
                    spec["learning_rates"] = []
                require(bool(spec["learning_rates"]), f"bench config: {method}.learning_rates must be numbers.")
            variants = spec.get("variants")
            require(variants is None or ("learning_rates" in spec and isinstance(variants, dict) and variants
                    and all(isinstance(v, dict | None) for v in variants.values())),
                    f"bench config: {method}.variants must map names to flags, beside learning_rates.")  # fmt: skip
            only = spec.get("tasks")
            require(only is None or (isinstance(only, list) and set(map(_label, only)) <= set(labels)),
                    f"bench config: {method}.tasks must list some of the config's tasks {labels}.")  # fmt: skip
            seeds = spec.get("seeds")
            require(seeds is None or (isinstance(seeds, list) and seeds and set(seeds) <= set(self.seeds)
                                      and "learning_rates" not in spec and "learning_rate_from" not in spec),
                    f"bench config: {method}.seeds must list some of the config's seeds, for a method at a fixed "
                    "rate.")  # fmt: skip
            source = spec.get("learning_rate_from")
            require(source is None or "learning_rates" in self.methods.get(source, {}),
                    f"bench config: {method}.learning_rate_from must name a method with learning_rates.")  # fmt: skip

    def run(self, task: str, method: str, seed: int, lr: float | None, variant: str | None = None) -> dict:
        spec = self.methods[method]
        label = _label(task)
        leaf = (f"{variant}-" if variant else "") + (f"lr{lr}-s{seed}" if lr else f"s{seed}")
        tuned_flags = self.variants(self.setting_source(method) or method).get(variant) or {}
        flags = {**self.config.get("common", {}), **spec.get("flags", {}), **tuned_flags, "seed": seed}
        if lr:
            flags["learning_rate"] = lr
        folder = os.path.join(self.root, label, method, leaf)
        args = [spec.get("command", "train"), "--model", self.config.get("model", "minilm"), "--task", task,
                "--output-dir", folder, "--overwrite", "--no-progress", *_flags(flags)]  # fmt: skip
        made_by = str(spec.get("defaults_of", self.config.get("defaults_of", "current")))
        if made_by != "current":
            args = with_former_defaults(args, made_by)
        copy = os.path.join(self.results_dir, "runs", f"{label}__{method}__{leaf}.json")
        return {"task": label, "method": method, "lr": lr, "variant": variant, "seed": seed, "dir": folder,
                "args": args, "copy": copy}  # fmt: skip

    def first_stage(self) -> list[dict]:
        """Runs that need no choice: the settings' grid on the tune seeds, and methods with a fixed rate; seed by
        seed within a task."""
        runs = []
        for task in self.config.get("tasks", ["rotten_tomatoes"]):
            task_runs = []
            for method in self.methods_for(task):
                spec = self.methods[method]
                if "learning_rates" in spec:
                    task_runs += [r for group in self.tuning_runs(task, method).values() for r in group]
                elif "learning_rate_from" not in spec:
                    task_runs += [self.run(task, method, s, None) for s in spec.get("seeds") or self.seeds]
            runs += _seed_by_seed(task_runs)
        return runs

    def second_stage(self) -> list[dict]:
        """The other seeds at each chosen setting, then (on every task) the methods that borrow a chosen setting:
        the tuned methods are complete before the ablations start. Within a task both stages go seed by seed."""
        runs = []
        for borrowers in (False, True):
            for task in self.config.get("tasks", ["rotten_tomatoes"]):
                runs += self._second_stage(task, borrowers)
        return runs

    def _second_stage(self, task: str, borrowers: bool) -> list[dict]:
        runs = []
        for method in self.methods_for(task):
            source = self.setting_source(method)
            if source is None or (source != method) != borrowers:
                continue  # fixed rate, or the other pass
            setting = self.chosen(task, source)
            if setting is None:
                continue  # not tuned yet (or a tuning run failed): its runs wait
            variant, lr = setting
            seeds = [s for s in self.seeds if s not in self.tune_seeds] if source == method else self.seeds
            runs += [self.run(task, method, s, lr, variant) for s in seeds]
        return _seed_by_seed(runs)

    def methods_for(self, task: str) -> list[str]:
        """The methods that run on this task: all but those whose `tasks` leave it out."""
        return [m for m, spec in self.methods.items() if _label(task) in map(_label, spec.get("tasks") or [task])]

    def setting_source(self, method: str) -> str | None:
        """The method whose tuning sets this method's rate and variant (itself, or the one it borrows from);
        None: a fixed rate."""
        spec = self.methods[method]
        return method if "learning_rates" in spec else spec.get("learning_rate_from")

    def variants(self, method: str) -> dict[str | None, dict]:
        return self.methods[method].get("variants") or {None: {}}

    def tuning_runs(self, task: str, method: str) -> dict[tuple[str | None, float], list[dict]]:
        """(variant, rate) -> its runs on the tune seeds."""
        rates = self.methods[method]["learning_rates"]
        return {(v, lr): [self.run(task, method, s, lr, v) for s in self.tune_seeds]
                for v in self.variants(method) for lr in rates}  # fmt: skip

    def chosen(self, task: str, method: str) -> tuple[str | None, float] | None:
        """The (variant, rate) with the best mean validation score over the tune seeds (ties: lower validation
        loss; then the one listed first); None until every tuning run has finished."""
        scores = {}
        for key, runs in self.tuning_runs(task, method).items():
            results = [finished(r) for r in runs]
            if any(x is None for x in results):
                return None
            scores[key] = tuple(statistics.mean(x) for x in zip(*map(_score, results), strict=True))
        return max(scores, key=scores.get)


def _seed_by_seed(runs: list[dict]) -> list[dict]:
    """Seed 0 of every method, then seed 1, ... (stable): a grid stopped early has its methods level."""
    return sorted(runs, key=lambda r: r["seed"])


def _label(task: str) -> str:
    return os.path.splitext(os.path.basename(task))[0]  # a file path becomes its name


# Defaults that changed after copies were made: (the first version with today's default, the items of the
# command lines the change applies to, the flag, its former value). A copy made by an older prunepeft (copies
# before 0.2.0 record no version) without the flag ran with the former value: it counts as a run with the flag
# written out, and never as a run under today's default.
FORMER_DEFAULTS = (  # oldest first: a flag written out by an older change is not overwritten by a later one
    ("0.2.0", (("search",),), "--space", "paper"),
    ("0.2.0", (("train",), ("--method", "supernet")), "--space", "paper"),
    ("0.3.0", (("search",),), "--space", "attention"),
    ("0.3.0", (("search",),), "--lora-slices", "1"),
    ("0.3.0", (("train",), ("--method", "supernet")), "--space", "attention"),
    ("0.3.0", (("train",), ("--method", "supernet")), "--lora-slices", "1"),
)


def with_former_defaults(args: list[str], made_by: str) -> list[str]:
    """The command line with every default that changed after version ``made_by`` written out at its former value
    (where the command line does not set the flag itself)."""
    for version, applies_to, flag, value in FORMER_DEFAULTS:
        if _version(made_by) < _version(version) and set(applies_to) <= set(_items(args)) and flag not in args:
            args = [*args, flag, value]
    return args


def finished(run: dict) -> dict | None:
    """The run's results if it finished with these very settings (a copy whose recorded command line is this
    run's, but for the folder it wrote to and the order of its flags, and with ``FORMER_DEFAULTS`` written out),
    else None."""
    if not os.path.exists(run["copy"]):
        return None
    results = read(run)
    recorded = results.get("bench", {}).get("args") or results.get("command", "").split(" ")[1:]
    recorded = with_former_defaults(_settings(recorded), results.get("versions", {}).get("prunepeft", "0"))
    return results if sorted(_items(recorded)) == sorted(_items(_settings(run["args"]))) else None


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _items(args: list[str]) -> list[tuple[str, ...]]:
    """A command line as its items: the command, then each flag with the values that follow it."""
    items: list[tuple[str, ...]] = []
    for arg in args:
        if arg.startswith("--") or not items:
            items.append((arg,))
        else:
            items[-1] += (arg,)
    return items


def done(run: dict) -> bool:
    return finished(run) is not None


def _settings(args: list[str]) -> list[str]:
    if "--output-dir" not in args:
        return args
    at = args.index("--output-dir")
    return args[:at] + args[at + 2 :]


def points(results: dict) -> list[tuple[str, dict]]:
    """(budget, results of one configuration) for each trained budget of a multi-budget search, in the shape of
    a single run's results (the search's time shared by all); [(None, results)] for any other run."""
    if "budgets" not in results:
        return [(None, results)]
    out = []
    search_s = results["time_s"]["search_s"]
    for p in results["budgets"]:
        if not p["trained"]:
            continue
        probes = p.get("rate_choice_s", 0.0)  # this budget's learning-rate probes count as search
        time_s = {"search_s": search_s, "rate_choice_s": probes, "final_train_s": p["final_train_s"],
                  "search_to_train_ratio": round((search_s + probes) / p["final_train_s"], 4)}  # fmt: skip
        one = {k: results[k] for k in ("method", "task", "model", "metric", "memory_mib") if k in results}
        one.update(test=p["test"], validation=p["validation"], params=p["params"], time_s=time_s,
                   per_layer=p.get("per_layer", {}))  # fmt: skip
        if "bench" in results:
            one["bench"] = results["bench"]
        out.append((p["budget"], one))
    return out


def _score(results: dict) -> tuple[float, float]:
    """Higher is better: the validation metric (negated for losses), then minus the validation loss; for a
    multi-budget search, their means over the trained budgets."""
    if "budgets" in results:
        scores = [_score(one) for _, one in points(results)] or [(float("-inf"), float("-inf"))]
        return tuple(statistics.mean(x) for x in zip(*scores, strict=True))
    from prunepeft.data.metrics import LOWER_IS_BETTER  # here: the grid itself stays free of the data libraries

    value = _metric(results, "validation")
    if results["metric"] in LOWER_IS_BETTER:
        value = -value
    loss = float(results["validation"].get("eval_loss", float("nan")))
    nan_low = lambda x: float("-inf") if math.isnan(x) else x  # noqa: E731
    return nan_low(value), nan_low(-loss)


def read(run: dict) -> dict:
    with open(run["copy"], encoding="utf-8") as fh:
        return json.load(fh)


def _metric(results: dict, split: str) -> float:
    key = ("eval_" if split == "validation" else "test_") + results["metric"]
    return float(results[split].get(key, float("nan")))
