"""Stand-in for dbt's ``api`` in sqlfluff's jinja templater."""


class Column:
    @staticmethod
    def translate_type(name):
        return {"string": "text"}.get(name, name)
