"""The README and docs/ against the code: the README's usage runs as written,
its size stays in bounds, local links resolve, examples in docs/ do what the
text says."""

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
PAGES = [README] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))) + [
    os.path.join(ROOT, "stubs", "README.md"), os.path.join(ROOT, "CHANGELOG.md"),
    os.path.join(ROOT, "THIRD-PARTY-NOTICES.md")]


def test_readme_is_short():
    assert os.path.getsize(README) <= 20 * 1024


def test_readme_test_command_is_what_ci_runs():
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert re.search(r"^make test$", ci, re.M)
    assert "make test       # install what is missing, build, run every test" in open(README).read()


@pytest.mark.parametrize("page", PAGES, ids=[os.path.relpath(p, ROOT) for p in PAGES])
def test_local_links_resolve(page):
    text = open(page).read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)   # no links inside code blocks
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#")[0]
        assert os.path.exists(os.path.join(os.path.dirname(page), path)), (page, target)


def test_readme_usage_runs_as_written(target):
    block = re.search(r"## One-minute usage\n\n```python\n(.*?)```", open(README).read(), re.S)
    out = target.run_code(block.group(1))
    assert "Traceback" not in out, out
    assert "{'reading': 3} [{'reading': 3}]\n" in out, out


def test_sort_by_key_example_of_the_query_page(target):
    # docs/queries.md: custom keys that start with a letter sort after every
    # generated key, and the $keys range it gives keeps only generated ones.
    text = open(os.path.join(ROOT, "docs", "queries.md")).read()
    q = re.search(r'for the ten newest generated keys limit the range to keys starting with a digit: '
                  r'`(\{.*?\})`', text).group(1)
    out = target.run_code(
        "from microtetherdb import MicroTetherDB\n"
        "t = [1700000000]\n"
        "db = MicroTetherDB(clock=lambda: t[0])\n"
        "keys = []\n"
        "for i in range(12):\n"
        "    t[0] += 1\n"
        "    keys.append(db.put({'i': i}))\n"
        "db.put('config', {'i': -1})\n"
        "got = [k for k, d in db.find(%s)]\n"
        "print(got == keys[::-1][:10], [k for k, d in db.find({'$sort': ('$key', -1), '$limit': 1})])\n"
        % q)
    assert out.strip() == "True ['config']", out
