"""The manual: drafts, review and publication, revisions, ranked search with and without diacritics."""

from __future__ import annotations

from typing import Any

from meetings.directory.models import Role, UnitKind
from meetings.manual import service
from tests.conftest import World

ARTICLES = [
    (
        "certified_copies",
        "Chứng thực bản sao điện tử từ bản chính thế nào?",
        "Cán bộ chứng thực đối chiếu bản chính, chứng thực và ký số bản sao điện tử.",
    ),
    (
        "business_registration",
        "Đăng ký hộ kinh doanh cần giấy tờ gì?",
        "Giấy đề nghị đăng ký hộ kinh doanh và bản sao giấy tờ pháp lý của chủ hộ.",
    ),
    (
        "digital_signatures",
        "Ký số không được trên máy trạm?",
        "Cài lại plugin ký số, kiểm tra chứng thư số còn hạn. Chứng thực chữ ký số.",
    ),
    ("fee_collection", "Thu phí, lệ phí trực tuyến bị lỗi?", "Kiểm tra cổng thanh toán quốc gia."),
]


async def editor_and_member(world: World) -> tuple[Any, Any]:
    unit = await world.unit("P-PHUXUAN", UnitKind.CENTRE)
    editor = await world.person("secretary@hue.example", Role.SECRETARY)
    member = await world.person("member@hue.example", Role.MEMBER, unit)
    return editor, member


async def write(world: World, topic: str, question: str, answer: str, publish: bool = True) -> int:
    response = await world.post_form("/manual", {"topic": topic, "question": question, "answer": answer})
    assert response.status == 303, await response.text()
    article_id = int(response.headers["Location"].rsplit("/", 1)[1])
    if publish:
        assert (await world.post_form(f"/manual/{article_id}/publish")).status == 303
    return article_id


async def search(world: World, q: str) -> Any:
    response = await world.client.get("/api/manual/search", params={"q": q})
    assert response.status == 200, await response.text()
    return [a["id"] for a in (await response.json())["articles"]]


async def test_search_is_ranked_and_ignores_diacritics(world: World) -> None:
    editor, member = await editor_and_member(world)
    await world.login(editor.email)
    ids = [await write(world, *a) for a in ARTICLES]
    draft = await write(world, "other", "Chứng thực hợp đồng?", "Bản nháp chứng thực.", publish=False)
    await world.logout()
    await world.login(member.email)
    with_marks = await search(world, "chứng thực")
    without = await search(world, "chung thuc")
    assert with_marks == without and set(without) == {ids[0], ids[2]}
    assert without[0] == ids[0]  # the words three times, not once: more relevant
    assert draft not in without  # drafts are for editors
    assert await search(world, "CHUNG THỰC bản") == [ids[0]]
    assert await search(world, "ho kinh doa") == [ids[1]]  # the last word as a prefix
    assert await search(world, "") == []
    # FTS and SQL syntax in the query is inert: no error, no injection.
    for nasty in (
        '"',
        'chung" OR "',
        "NEAR(chung thuc)",
        "ký*",
        "phí -lệ",
        "a' OR 1=1 --",
        "'; DROP TABLE manual_articles; --",
        "(((",
        "col:chung",
        "^thu",
        "ký AND",
        "%_%",
        "x" * 500,
    ):
        response = await world.client.get("/api/manual/search", params={"q": nasty})
        assert response.status == 200, (nasty, await response.text())
    # A NUL anywhere in a query is refused before any view (web/forms.py:check_address).
    response = await world.client.get("/api/manual/search", params={"q": "\x00"})
    assert response.status == 400
    starred = await search(world, "ký*")
    assert starred[0] == ids[2] and set(starred) == set(ids[:3])  # "ký số" twice ranks first
    page = await world.client.get("/manual", params={"q": "thu phi"})
    assert page.status == 200 and ARTICLES[3][1] in await page.text()
    assert (await world.client.get(f"/manual/{draft}")).status == 404
    await world.logout()
    await world.login(editor.email)
    assert draft in await search(world, "chung thuc hop dong")


async def test_revisions_are_kept_and_stale_saves_refused(world: World) -> None:
    editor, member = await editor_and_member(world)
    await world.login(editor.email)
    article = await write(world, *ARTICLES[1])
    form = {
        "topic": "business_registration",
        "question": ARTICLES[1][1],
        "answer": "Câu trả lời mới.",
        "revision": "1",
    }
    assert (await world.post_form(f"/manual/{article}", form)).status == 303
    stale = await world.post_form(f"/manual/{article}", form | {"answer": "Ghi đè"})
    assert stale.status == 409
    empty = await world.post_form(f"/manual/{article}", form | {"revision": "2", "question": ""})
    assert empty.status == 422
    page = await (await world.client.get(f"/manual/{article}")).text()
    assert "Revision 2" in page or "Phiên bản 2" in page or page.count("<li>") >= 2
    async with world.db() as db:
        revisions = await service.revisions(db, article)
    assert [(r.number, r.answer) for r in revisions] == [(2, "Câu trả lời mới."), (1, ARTICLES[1][2])]
    assert await search(world, "cau tra loi moi") == [article]
    assert await search(world, "giay de nghi") == []  # the index follows the current revision
    await world.logout()
    await world.login(member.email)
    assert (await world.client.get(f"/manual/{article}/edit")).status == 403
    assert (
        await world.post_form("/manual", {"topic": "other", "question": "q", "answer": "a"})
    ).status == 403
    bad_topic = await world.client.get("/manual")
    assert bad_topic.status == 200


async def test_articles_are_grouped_by_topic(world: World) -> None:
    editor, member = await editor_and_member(world)
    await world.login(editor.email)
    for a in ARTICLES:
        await write(world, *a)
    refused = await world.post_form("/manual", {"topic": "nope", "question": "q", "answer": "a"})
    assert refused.status == 422
    await world.logout()
    await world.login(member.email)
    page = await (await world.client.get("/manual")).text()
    positions = [page.index(f'id="topic-{topic}"') for topic, _q, _a in ARTICLES]
    assert positions == sorted(positions)
