"""The repository's address, in one place, and everything made from it.

The address is ``Repository`` under ``[project.urls]`` in pyproject.toml (absent until the
course has a public home). From it come:

- the Colab and Binder links of the site (``website.build``) and of the README's
  "Colab and Binder" section (between ``<!-- launch:start -->`` and ``<!-- launch:end -->``);
- the first lines of every lesson's first code cell, which install the course package where
  ``course_utils`` is missing (Colab, a lesson downloaded alone) and do nothing where it is
  installed (the repository's ``.venv``). Without an address those lines stop the notebook
  with one sentence that says what to do instead.

``python -m website.links`` says whether README and notebooks agree with pyproject.toml;
``python -m website.links --write`` rewrites the README section and the notebooks' first lines
(a source edit: outputs, execution counts and the other cells stay as they are).
Colab and Binder open GitHub repositories, so their links exist only for a github.com address.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
README = ROOT / "README.md"
NOTEBOOK_GLOB = "notebooks/[0-9]*.ipynb"
URL_KEY = "Repository"
BRANCH = "main"          # the branch Colab opens (Binder opens HEAD, the default branch)
PACKAGE = "attention-course"
LAUNCH_START, LAUNCH_END = "<!-- launch:start -->", "<!-- launch:end -->"
# The line every lesson's first code cell keeps (docs/CONVENTIONS.md); the install lines go above it.
FIRST_LINE = "import course_utils as cu; SEED = cu.set_seed(); DEVICE = cu.pick_device()"
PRELUDE_MARK = "import importlib.util"  # first line of the prelude: how an existing one is found
MISSING_SENTENCE_NO_URL = ("This lesson needs the course package course_utils: clone the course "
                           "repository and run ./course open there (its README says how).")


@dataclass(frozen=True)
class Repo:
    """The configured address (``url`` None when unset) and what can be made from it."""

    url: str | None
    branch: str = BRANCH

    @property
    def github(self) -> tuple[str, str] | None:
        """(owner, name) for a github.com address, else None."""
        if not self.url:
            return None
        m = re.match(r"^https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$", self.url)
        return (m.group(1), m.group(2)) if m else None

    @property
    def install_spec(self) -> str | None:
        """What pip installs the course package from (``name @ git+URL``)."""
        if not self.url:
            return None
        url = self.url.rstrip("/")
        return f"{PACKAGE} @ {url if url.startswith('git+') else 'git+' + url}"

    def colab_url(self, path: str) -> str | None:
        """Colab link of a notebook (``path`` relative to the repository root)."""
        gh = self.github
        if gh is None:
            return None
        return f"https://colab.research.google.com/github/{gh[0]}/{gh[1]}/blob/{self.branch}/{path}"

    def binder_url(self, path: str | None = None) -> str | None:
        """Binder link that opens ``path`` (a notebook or folder) in JupyterLab."""
        gh = self.github
        if gh is None:
            return None
        target = f"?urlpath=lab/tree/{path}" if path else ""
        return f"https://mybinder.org/v2/gh/{gh[0]}/{gh[1]}/HEAD{target}"

    def blob_url(self, path: str) -> str | None:
        """The repository's web page of a file (GitHub only)."""
        gh = self.github
        if gh is None:
            return None
        return f"https://github.com/{gh[0]}/{gh[1]}/blob/{self.branch}/{path}"


def _load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def repository(pyproject: Path = PYPROJECT) -> Repo:
    """The address from ``[project.urls] Repository`` (None when absent or empty)."""
    urls = _load_toml(pyproject).get("project", {}).get("urls", {}) or {}
    url = urls.get(URL_KEY)
    if url is not None and not isinstance(url, str):
        raise ValueError(f"{pyproject}: [project.urls] {URL_KEY} must be a string, got {type(url).__name__}")
    url = (url or "").strip() or None
    if url and not re.match(r"^(?:git\+)?https://[^\s<>]+$", url):
        raise ValueError(f"{pyproject}: [project.urls] {URL_KEY} must be an https:// address, got {url!r}")
    return Repo(url)


# --------------------------------------------------------------------------- install cell
def prelude(repo: Repo) -> str:
    """The lines that go above FIRST_LINE in every lesson's first code cell."""
    if repo.install_spec is None:
        return (f"{PRELUDE_MARK}\n"
                "if importlib.util.find_spec(\"course_utils\") is None:  # not installed here\n"
                f"    raise SystemExit({json.dumps(MISSING_SENTENCE_NO_URL, ensure_ascii=False)})\n")
    return (f"{PRELUDE_MARK}\n"
            "if importlib.util.find_spec(\"course_utils\") is None:  # Colab, or a lesson downloaded alone\n"
            "    import subprocess\n"
            "    import sys\n"
            f"    print(\"installing the course package from {repo.url}\")\n"
            "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
            f"                    {json.dumps(repo.install_spec)}], check=True)\n"
            "    importlib.invalidate_caches()\n")


def first_code_cell(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            return cell
    return None


def with_prelude(source: str, repo: Repo) -> str:
    """``source`` (a first code cell) with the current prelude in place of any older one."""
    start = source.find(FIRST_LINE)
    if start < 0:
        raise ValueError(f"the first code cell does not contain {FIRST_LINE!r}")
    head = source[:start]
    if head and not head.startswith(PRELUDE_MARK):
        raise ValueError("the first code cell has other lines above the set-up line: "
                         f"{head.splitlines()[0]!r}")
    return prelude(repo) + source[start:]


def sync_notebook(path: Path, repo: Repo, write: bool) -> bool:
    """Whether ``path``'s first code cell needed the current prelude (written when ``write``)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cell = first_code_cell(nb)
    if cell is None:
        raise ValueError(f"{path}: no code cell")
    try:
        new = with_prelude(cell.source, repo)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if new == cell.source:
        return False
    if write:
        cell.source = new
        nbformat.write(nb, path)
    return True


# --------------------------------------------------------------------------- README
def readme_launch_section(repo: Repo) -> str:
    """The README's Colab and Binder text, between the launch markers."""
    colab_font = "!apt-get -qq install fonts-noto-cjk   # optional: Chinese labels in the plots"
    if repo.github is None:
        why = ("no address is set" if repo.url is None
               else f"the address ({repo.url}) is not on github.com, and Colab and Binder open GitHub repositories")
        return (
            f"Colab and Binder links appear here and on the course site once the course's GitHub\n"
            f"address is known; for now {why}. To set it, write the address of the\n"
            f"repository (what you would `git clone`) as `{URL_KEY}` under `[project.urls]` in\n"
            "`pyproject.toml`, then run `.venv/bin/python -m website.links --write`: it rewrites this section\n"
            "and the first cell of every lesson, which then installs the course package from that\n"
            "address wherever `course_utils` is missing. `./course site` reads the same setting.\n"
            "Until then a lesson opened outside the repository stops at its first cell and says what to do.\n\n"
            "**Binder** builds from [`binder/`](binder/): a lighter conda-forge environment than\n"
            "`environment.yml` (what the lessons and live slides need), `postBuild` to install\n"
            "`course_utils`, and `apt.txt` for the CJK font.\n")
    owner, name = repo.github
    nb_dir = "notebooks"
    return (
        f"**Colab** has PyTorch already. Open a lesson straight from GitHub, e.g.\n"
        f"[lesson 00 on Colab]({repo.colab_url(nb_dir + '/00_setup.ipynb')}) (every lesson page of the\n"
        f"course site has its own button): its first cell installs the course package with\n"
        f"`pip install \"{repo.install_spec}\"` when `course_utils` is missing. For the\n"
        f"diagrams in `images/` too, clone the whole course in a Colab notebook:\n\n"
        "```python\n"
        f"!git clone {repo.url} attention-course\n"
        "%cd attention-course\n"
        "!pip install -q .\n"
        f"{colab_font}\n"
        "```\n\n"
        "then open the lessons from `attention-course/notebooks/`. Without the CJK font the plotting\n"
        "helpers label Chinese tokens in pinyin.\n\n"
        "**Binder** builds from [`binder/`](binder/): a lighter conda-forge environment than\n"
        "`environment.yml` (what the lessons and live slides need), `postBuild` to install\n"
        "`course_utils`, and `apt.txt` for the CJK font.\n"
        f"[Launch it on Binder]({repo.binder_url(nb_dir)}) (github.com/{owner}/{name}).\n"
        "Binder's sessions are small (about 2 GB of memory) and temporary: download your work.\n")


def readme_with_section(text: str, repo: Repo) -> str:
    if LAUNCH_START not in text or LAUNCH_END not in text:
        raise ValueError(f"README.md has no {LAUNCH_START} ... {LAUNCH_END} section")
    head, rest = text.split(LAUNCH_START, 1)
    _, tail = rest.split(LAUNCH_END, 1)
    return f"{head}{LAUNCH_START}\n{readme_launch_section(repo)}{LAUNCH_END}{tail}"


# --------------------------------------------------------------------------- command line
def check(root: Path = ROOT, write: bool = False) -> list[str]:
    """What disagrees with pyproject.toml (fixed when ``write``): README, lesson notebooks."""
    repo = repository(root / "pyproject.toml")
    stale = []
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    new = readme_with_section(text, repo)
    if new != text:
        stale.append(str(readme.relative_to(root)))
        if write:
            readme.write_text(new, encoding="utf-8")
    for path in sorted(root.glob(NOTEBOOK_GLOB)):
        if sync_notebook(path, repo, write):
            stale.append(str(path.relative_to(root)))
    return stale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m website.links", description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true",
                    help="rewrite the README section and the notebooks' first lines")
    args = ap.parse_args(argv)
    repo = repository()
    stale = check(ROOT, write=args.write)
    print(f"[project.urls] {URL_KEY} = {repo.url or '(not set)'}", file=sys.stderr)
    for path in stale:
        print(f"{'rewrote' if args.write else 'stale'}: {path}", file=sys.stderr)
    if stale and not args.write:
        print("run: .venv/bin/python -m website.links --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
