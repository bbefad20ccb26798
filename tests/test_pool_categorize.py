"""Categorization with the shipped MiniLM embedder: obvious snippets land in their category."""
from scoder.pool.categorize import CATEGORY_DESCRIPTIONS, categorize

CATEGORIES = list(CATEGORY_DESCRIPTIONS)
SQL = '''def get_user(conn, user_id):
    """Fetch a user row from the users table with a SQL SELECT query."""
    cur = conn.execute("SELECT * FROM users WHERE id = ?", (user_id,))
    return cur.fetchone()
'''
SORT = '''def bubble_sort(items):
    """Sort a list in ascending order with bubble sort."""
    a = list(items)
    for i in range(len(a)):
        for j in range(len(a) - 1 - i):
            if a[j] > a[j + 1]:
                a[j], a[j + 1] = a[j + 1], a[j]
    return a
'''


def test_sql_and_sorting_categories():
    records = [{"id": "sql", "code": SQL}, {"id": "sort", "code": SORT}]
    out = categorize(records, CATEGORIES, embedder="minilm", progress=False)
    assert [r["category"] for r in out] == ["Database and SQL Problems", "Algorithmic and Data Structure Problems"]
    assert all(0 < r["category_similarity"] <= 1 for r in out)
    assert [r["id"] for r in out] == ["sql", "sort"] and "category" not in records[0]
