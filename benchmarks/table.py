"""Print a Markdown table of every results.json under the given folders (one row per run)."""

import json
import sys
from pathlib import Path


def main(folders: list[str]) -> None:
    rows, commands, env = [], [], None
    for folder in folders:
        for path in sorted(Path(folder).glob("**/results.json")):
            r = json.loads(path.read_text())
            m, t = r["metric"], r["time_s"]
            search = f"{t['search_s']:.0f}" if "search_s" in t else "-"
            ratio = f"{t['search_to_train_ratio']:.2f}" if "search_to_train_ratio" in t else "-"
            rows.append(
                f"| {path.parent.name} | {r['method']} | {r['params']['peft']:,} | "
                f"{r['params']['peft_percent_of_base']:.3f}% | {r['validation'].get('eval_' + m, float('nan')):.4f} | "
                f"{r['test']['test_' + m]:.4f} | {search} | {t['final_train_s']:.0f} | {ratio} |"
            )
            commands.append(f"- {path.parent.name}: `{r['command']}`")
            env = r["versions"], r["machine"]["platform"], r["machine"]["torch_threads"]
    print("| run | method | PEFT params (head excluded) | % of base | validation | test | search s | final train s "
          "| search / train |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if rows:
        print(f"\nMetric: {m} (validation: last epoch; test: evaluated once). Commands:\n")
        print("\n".join(commands))
        print(f"\nVersions {env[0]}; {env[1]}; {env[2]} torch thread(s) per run.")


if __name__ == "__main__":
    main(sys.argv[1:])
