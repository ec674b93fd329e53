"""Stand-in for dbt's ``adapter`` in sqlfluff's jinja templater: ``adapter.dispatch(name)``
renders a plain function call ``name(args)``, which is valid SQL to lint."""


def dispatch(name, package=None):
    return lambda *args: f"{name}({', '.join(str(a) for a in args)})"
