"""What the command-line tools (``rocket.main``, ``rocket.sweep``) share: flag parsing that turns
a bad ``--config`` flag into one line on stderr and exit status 2, not a traceback."""

from __future__ import annotations

import sys

from absl import flags


def _one_line(error: BaseException) -> str:
  """The useful line of a flag error: ml_collections' "did you mean", or the last line of a
  config file's traceback."""
  inner = error.args[0] if error.args else error
  if isinstance(inner, KeyError) and inner.args:  # unknown --config.<field>
    name, _, hint = str(inner.args[0]).partition("\n")
    return f"no such config field {name}" + (f"; {hint[0].lower()}{hint[1:]}" if hint else "")
  lines = [x.strip() for x in str(inner).strip().splitlines() if x.strip()]
  if len(lines) > 1 and lines[-1] != lines[0]:  # a config file raised: first + last line
    return f"{lines[0].rstrip(':')} {lines[-1]}"
  return lines[0] if lines else type(error).__name__


def parse_flags(argv: list[str]) -> list[str]:
  """``absl.app.run``'s ``flags_parser``: parses ``argv``; a bad flag exits 2 with one line."""
  prog = argv[0].rsplit("/", 1)[-1] if argv else "rocket"
  try:
    rest = flags.FLAGS(argv)
    if "config" in flags.FLAGS and flags.FLAGS["config"].present:
      flags.FLAGS["config"].value.keys()  # a missing config file is only reported on access
  except (flags.Error, AttributeError, KeyError) as e:
    print(f"{prog}: bad flag: {_one_line(e)} (--helpfull lists the flags)", file=sys.stderr)
    sys.exit(2)
  except OSError as e:  # the config file could not be loaded
    print(f"{prog}: bad flag --config: {_one_line(e)}", file=sys.stderr)
    sys.exit(2)
  return rest
