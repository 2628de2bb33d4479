"""One documentation page per model, generated from the model registry.

Used two ways:

- as an mkdocs hook (``hooks: [docs/gen_model_pages.py]`` in ``mkdocs.yml``): the pages
  ``models/<Name>.md`` and the catalogue ``models/index.md`` are added to the build in
  memory, so they can never drift from the code;
- as a script, ``python docs/gen_model_pages.py OUTDIR``, which writes the same pages to
  ``OUTDIR`` for inspection.

Each page holds the model's docstring (its equations), states, inputs, observables,
parameters (default, unit, admissible domain, meaning), initial values, the brainmass
name, the reference, and a runnable example.
"""

from __future__ import annotations

import inspect
import os
import sys

MODELS_DIR = "models"


def _unit(unit: str) -> str:
    return f"`{unit}`" if unit else "1"


def _value(value) -> str:
    from brainmass_eqx.models import Uniform

    if isinstance(value, Uniform):
        return f"random U({value.low:g}, {value.high:g})"
    if value is None:
        return "0"
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


def _domain(domain) -> str:
    if isinstance(domain, str):
        return {"real": "any real", "positive": "> 0", "nonnegative": "≥ 0"}.get(domain, domain)
    return f"[{domain[0]:g}, {domain[1]:g}]"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _example(desc) -> str:
    random_init = any(type(v).__name__ == "Uniform" for v in desc.initial.values())
    key = ", key=jax.random.key(0)" if random_init else ""
    first = next(iter(desc.states))
    return "\n".join(
        [
            "```python",
            "import jax",
            "import brainmass_eqx as bx",
            "",
            f"node = bx.models.{desc.name}(4)  # 4 independent regions, default parameters",
            f"traj = bx.simulate(node, 200.0, dt=0.1{key})  # 200 ms at dt = 0.1 ms",
            f"traj[{first!r}].shape  # (2000, 4): one sample per step",
            "```",
        ]
    )


def model_page(desc) -> str:
    """The Markdown page of one `ModelDescription`."""
    doc = inspect.cleandoc(desc.cls.__doc__ or "")
    title, _, body = doc.partition("\n")
    lines = [f"# {desc.name}", "", f"*{title.strip()}*", "", body.strip(), ""]
    facts = [
        ("category", desc.category),
        ("use case", desc.use_case),
        ("brainmass name", f"`{desc.brainmass_name}`" if desc.brainmass_name else "-"),
        ("coupling input", f"`{desc.cls.coupling_input}`" if desc.cls.coupling_input else "-"),
    ]
    lines += ["| property | value |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in facts] + [""]

    lines += ["## State variables", "", "| state | unit | initial value |", "|---|---|---|"]
    lines += [f"| `{s}` | {_unit(u)} | {_value(desc.initial.get(s))} |" for s, u in desc.states.items()]
    lines += ["", "Initial values are fields `init_<state>` (e.g. "
              f"`{desc.name}(n, init_{next(iter(desc.states))}=0.1)`); random ones need `key=`.", ""]  # fmt: skip
    if desc.inputs:
        lines += ["## Inputs", "", "| input | unit |", "|---|---|"]
        lines += [f"| `{i}` | {_unit(u)} |" for i, u in desc.inputs.items()] + [""]
    if desc.observables:
        lines += ["## Observables", ""] + [f"- `{o}` [{u or '1'}]" for o, u in desc.observable_units.items()] + [""]

    lines += ["## Parameters", "", "| parameter | default | unit | domain | meaning |", "|---|---|---|---|---|"]
    for name, spec in desc.parameters.items():
        lines.append(
            f"| `{name}` | {_value(spec['default'])} | {_unit(spec['unit'])} | {_domain(spec['domain'])} | {_cell(spec['doc'])} |"
        )
    lines += [
        "",
        "Each parameter is a scalar or one value per region, given as a plain number in the "
        "unit above, a `unxt.Quantity` in any unit of the same dimension, or a "
        "`bx.Param(value, fit=True, bounds=...)` to fit it.",
        "",
        "## Example",
        "",
        _example(desc),
        "",
        "## Reference",
        "",
        desc.reference,
        "",
        "## API",
        "",
        f"::: brainmass_eqx.models.{desc.name}",
        "    options:",
        "      show_root_heading: false",
        "      show_bases: true",
        "      members: false",
        "",
    ]
    return "\n".join(lines)


def index_page(registry) -> str:
    lines = [
        "# Model catalogue",
        "",
        "Every node model of `brainmass_eqx`, generated from `brainmass_eqx.models.model_registry()`. "
        "The same table is printed by `python -m brainmass_eqx models`, and "
        "`python -m brainmass_eqx models NAME` prints one model's page as text.",
        "",
        "| model | brainmass | category | states | use case |",
        "|---|---|---|---|---|",
    ]
    for name, desc in registry.items():
        states = ", ".join(f"`{s}`" for s in desc.states)
        lines.append(
            f"| [{name}]({name}.md) | `{desc.brainmass_name or '-'}` | {desc.category} | {states} | {_cell(desc.use_case)} |"
        )
    lines += [
        "",
        "All models share one contract (see [Key concepts](../concepts.md)): an immutable "
        "`eqx.Module` with `state_names`, `input_names`, `init_state(key)` and "
        "`vector_field(t, state, inputs)` (per ms), simulated with `bx.simulate` and coupled "
        "with `Network`.",
        "",
    ]
    return "\n".join(lines)


def pages() -> dict[str, str]:
    """``{path relative to docs/: Markdown}`` for the catalogue and every model."""
    from brainmass_eqx.models import model_registry

    registry = model_registry()
    out = {f"{MODELS_DIR}/index.md": index_page(registry)}
    for name, desc in registry.items():
        out[f"{MODELS_DIR}/{name}.md"] = model_page(desc)
    return out


# -- mkdocs hook ------------------------------------------------------------------------------


def on_files(files, config):
    from mkdocs.structure.files import File

    for path, text in pages().items():
        files.append(File.generated(config, path, content=text))
    return files


def on_config(config):
    """Put the generated model pages into the navigation, after the catalogue."""
    from brainmass_eqx.models import model_registry

    model_nav = [{"Catalogue": f"{MODELS_DIR}/index.md"}] + [
        {name: f"{MODELS_DIR}/{name}.md"} for name in model_registry()
    ]
    for i, entry in enumerate(config.nav or []):
        if isinstance(entry, dict) and "Models" in entry:
            config.nav[i] = {"Models": model_nav}
    return config


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python docs/gen_model_pages.py OUTDIR")
    for path, text in pages().items():
        target = os.path.join(sys.argv[1], path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as f:
            f.write(text)
    print(f"wrote {len(pages())} pages under {sys.argv[1]}")
