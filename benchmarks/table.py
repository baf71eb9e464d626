"""Print a Markdown table of every results.json under the given folders (one row per run)."""

import json
import sys
from pathlib import Path


def main(folders: list[str]) -> None:
    rows = []
    for folder in folders:
        for path in sorted(Path(folder).glob("**/results.json")):
            r = json.loads(path.read_text())
            m = r["metric"]
            t = r["time_s"]
            rows.append(
                f"| {path.parent.name} | {r['method']} | {r['params']['peft']:,} | "
                f"{r['params']['peft_percent_of_base']:.3f}% | {r['validation'].get('eval_' + m, float('nan')):.4f} | "
                f"{r['test']['test_' + m]:.4f} | {t.get('search_s', 0):.0f} | {t['final_train_s']:.0f} | "
                f"{t.get('search_to_train_ratio', float('nan')):.2f} |"
            )
            env = r["versions"], r["machine"]["platform"], r["machine"]["torch_threads"]
            cmd = r["command"]
    print("| run | method | PEFT params | % of base | validation | test | search s | train s | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if rows:
        print(f"\nMetric: {m}. Last run's command: `{cmd}`; versions {env[0]}; {env[1]}, {env[2]} threads.")


if __name__ == "__main__":
    main(sys.argv[1:])
