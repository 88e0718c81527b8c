"""Access control on every URL of the studio, found by walking the URLconf: a new URL without a case fails.

Every URL is opened with REAL ids: one object of every kind a URL needs is made in this project (`project`)
and the same kinds in another project (`other`), so each check answers one question:

- lead pages: the lead gets the page (the ids are real), an annotator of the project exactly 403, an outsider
  and the lead of another project exactly 404, and this project's lead with the other project's ids 404;
- annotator pages: the annotator gets the page, outsiders and other projects' leads 404, and ids of the
  annotator's own objects in the other project 404;
- anonymous users are sent to log in, or answered 401 by the token API;
- the token API: a lead's token gets the data, an annotator's 403, an outsider's and another lead's 404;
- the admin: staff only, everyone else is sent to the admin's login.

Each case names the methods its view takes (the others must answer 405), so a view that starts answering POST
with no case for it fails here too. Lead POSTs run the real view: background work is enqueued with
transaction.on_commit, which never fires inside a test's transaction, so no job runs.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.cache import caches
from django.db import transaction
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from annotation.models import RoutingPolicy, SampleSignals
from annotation.review import queue as review
from evaluation.curation.services import api_token_create
from generation.models import LLMCall
from synthstudio.models import Membership, Project, Role, WorkerHeartbeat
from synthstudio.services import codebook_create_version
from tests.conftest import LABELS, make_user
from tests.factories import (
    BenchmarkRunFactory,
    CodebookFactory,
    ConditionValueProposalFactory,
    ExportJobFactory,
    GenerationConfigFactory,
    GenerationItemFactory,
    GenerationRunFactory,
    GoldItemFactory,
    ImportJobFactory,
    InvitationFactory,
    JudgeRunFactory,
    LabellingRunFactory,
    LabelStudioImportJobFactory,
    LLMEndpointFactory,
    MembershipFactory,
    MetricsRefreshFactory,
    PairwiseItemFactory,
    ProjectFactory,
    RefinementRunFactory,
    SampleActionJobFactory,
    SampleFactory,
    SignalsRunFactory,
    SnapshotFactory,
    SnapshotJobFactory,
    TextCorrectionFactory,
    UserFactory,
    answered_assignment,
    api_token,
    reserved_assignment,
)

GET, POST = "GET", "POST"


class Who(Enum):
    LEAD = "the project's leads"
    MEMBER = "any member of the project (annotator pages)"
    USER = "any logged-in user"
    STAFF = "staff users only (project creation, PROJECT_CREATORS=staff by default)"
    OWNER = "the user who owns the object in the URL"
    ANYONE = "anyone, logged in or not"
    API_LEAD = "the project's leads, with a Bearer token"
    API_USER = "any user with a Bearer token"


World = Mapping[str, int]


@dataclass(frozen=True)
class Case:
    """How one URL must answer. `methods[0]` is the request the permitted user makes (with `data`)."""

    who: Who
    methods: tuple[str, ...]
    ids: Mapping[str, str] = field(default_factory=dict)  # URL kwarg -> kind of object (a World key)
    consts: Mapping[str, str] = field(default_factory=dict)  # URL kwargs that are not object ids
    status: int = 200  # what the permitted user gets
    data: Mapping[str, str] = field(default_factory=dict)  # POST body of the permitted user's request
    body_ids: Mapping[str, str] = field(default_factory=dict)  # POST fields holding object ids -> World key

    def body(self, world: World) -> dict[str, str]:
        return {**self.data, **{name: str(world[kind]) for name, kind in self.body_ids.items()}}

    @property
    def uses_ids(self) -> bool:
        return bool(self.ids or self.body_ids)


Ids = Mapping[str, str] | None


def lead(
    *methods: str, status: int = 200, data: Ids = None, consts: Ids = None, body_ids: Ids = None, **ids: str
) -> Case:
    """A page for the project's leads; `ids` name the kind of object each URL parameter points at."""
    return Case(Who.LEAD, methods, ids, consts or {}, status, data or {}, body_ids or {})


def member(*methods: str, status: int = 200, data: Ids = None, body_ids: Ids = None, **ids: str) -> Case:
    """A page for every member, annotators included (the review workbench and what it links to)."""
    return Case(Who.MEMBER, methods, ids, {}, status, data or {}, body_ids or {})


def api(status: int = 200, consts: Ids = None, **ids: str) -> Case:
    return Case(Who.API_LEAD, (GET,), ids, consts or {}, status)


CASES: dict[str, Case] = {
    # -- account pages, no project
    "home": Case(Who.USER, (GET,)),
    "login": Case(Who.ANYONE, (GET, POST)),
    "logout": Case(Who.ANYONE, (POST,), status=302),
    "password_change": Case(Who.USER, (GET, POST)),
    "password_change_done": Case(Who.USER, (GET,)),
    "worker_status": Case(Who.USER, (GET,)),
    "project_new": Case(Who.STAFF, (GET, POST)),
    "api:tokens": Case(Who.USER, (GET, POST)),
    "api:token_revoke": Case(Who.OWNER, (POST,), {"token_id": "token"}, status=302),
    "api:projects": Case(Who.API_USER, (GET,)),
    # -- core
    "project_detail": member(GET),
    "codebook_detail": member(GET),
    "project_settings": lead(GET, POST),
    "codebook_edit": lead(GET, POST),
    "members": lead(GET, POST),
    "member_remove": lead(POST, status=302, membership_id="membership"),
    "invitation_revoke": lead(POST, status=302, invitation_id="invitation"),
    # public: the token is the credential; an unknown one answers 404 with a message saying so
    "invitation_accept": Case(Who.ANYONE, (GET, POST), consts={"token": "not-a-real-token"}, status=404),
    "sample_list": lead(GET),
    "annotation:sample_action": lead(POST, status=302, data={"action": "exclude", "scope": "all"}),
    "annotation:sample_action_job": lead(GET, job_id="sample_action_job"),
    "import_upload": lead(GET, POST),
    "import_mapping": lead(GET, POST, job_id="import_job"),
    "import_progress": lead(GET, job_id="import_job"),
    "job_retry": lead(POST, status=302, job_id="generation_run", consts={"kind": "generation.generationrun"}),
    # -- generation
    "generation:home": lead(GET),
    "generation:endpoint_list": lead(GET, POST),
    "generation:endpoint_edit": lead(GET, POST, endpoint_id="endpoint"),
    "generation:endpoint_test": lead(POST, endpoint_id="endpoint"),
    "generation:config_new": lead(GET, POST),
    "generation:config_detail": lead(GET, config_id="config"),
    "generation:config_edit": lead(GET, POST, config_id="config"),
    "generation:config_preview": lead(GET, config_id="config"),
    "generation:run_start": lead(POST, status=302, config_id="config"),
    "generation:proposals_request": lead(POST, status=302, config_id="config"),
    "generation:proposal_decide": lead(POST, status=302, proposal_id="proposal"),
    "generation:run_detail": lead(GET, run_id="generation_run"),
    "generation:run_cancel": lead(POST, status=302, run_id="generation_run"),
    "generation:run_resume": lead(POST, status=302, run_id="generation_run"),
    "generation:run_next_round": lead(POST, status=302, run_id="generation_run"),
    "generation:outputs": lead(GET),
    "generation:output_detail": lead(GET, item_id="generation_item"),
    # -- labelling and routing
    "annotation:labelling_overview": lead(GET),
    "annotation:labelling_run_start": lead(POST, status=400),  # an empty form is shown again with its errors
    "annotation:refine_run_start": lead(POST, status=400),  # likewise: no passes given
    "annotation:labelling_run_detail": lead(GET, run_id="labelling_run"),
    "annotation:labelling_run_cancel": lead(POST, status=302, run_id="labelling_run"),
    "annotation:labelling_run_resume": lead(POST, status=302, run_id="labelling_run"),
    "annotation:signals_run_start": lead(POST, status=302),
    "annotation:signals_run_progress": lead(GET, run_id="signals_run"),
    "annotation:routing_policy": lead(GET, POST),
    "annotation:routed_items": lead(GET),
    # -- review: the annotator's workbench
    "annotation:review_queue": member(GET),
    "annotation:review_answer": member(
        POST, status=302, data={"label": "positive"}, assignment_id="reserved_assignment"
    ),
    "annotation:review_skip": member(
        POST, status=302, data={"reason": "unsure"}, assignment_id="reserved_assignment"
    ),
    "annotation:review_answer_edit": member(GET, POST, assignment_id="answered_assignment"),
    "annotation:review_undo": member(POST, status=302),
    "annotation:review_history": member(GET),
    # -- review: the lead's pages
    "annotation:review_overview": lead(GET),
    "annotation:review_release": lead(POST, status=302, assignment_id="reserved_assignment"),
    "annotation:review_reassign": lead(POST, status=302, assignment_id="reserved_assignment"),
    "annotation:adjudication_list": lead(GET),
    "annotation:adjudication_detail": lead(GET, POST, sample_id="sample"),
    "annotation:gold_items": lead(GET, POST),
    "annotation:gold_rate_set": lead(POST, status=302),
    "annotation:label_aggregation_set": lead(POST, status=302, data={"method": "dawid_skene"}),
    "annotation:gold_item_remove": lead(POST, status=302, gold_id="gold"),
    "annotation:text_corrections": lead(GET),
    "annotation:text_corrections_accept_all": lead(POST, status=302),
    "annotation:text_correction_decide": lead(
        POST, status=302, data={"decision": "accept"}, correction_id="text_correction"
    ),
    # -- curation, snapshots, export
    "evaluation:curation": lead(GET),
    "evaluation:curation_counts": lead(GET),
    "evaluation:snapshot_new": lead(POST, status=302),
    "evaluation:snapshot_job": lead(GET, job_id="snapshot_job"),
    "evaluation:snapshot_job_progress": lead(GET, job_id="snapshot_job"),
    "evaluation:snapshot_detail": lead(GET, version="snapshot"),
    "evaluation:snapshot_compare": lead(GET, version="snapshot"),  # against the version before it
    "evaluation:snapshot_download": lead(GET, version="snapshot", consts={"file_format": "jsonl"}),
    "evaluation:snapshot_interchange_download": lead(GET, version="snapshot", consts={"tool": "prodigy"}),
    "evaluation:export_start": lead(POST, status=302, version="snapshot", consts={"file_format": "jsonl"}),
    "evaluation:export_job": lead(GET, job_id="export_job"),
    "evaluation:export_job_progress": lead(GET, job_id="export_job"),
    "evaluation:label_issues": lead(GET),
    "evaluation:label_issues_run": lead(POST, status=302),
    "evaluation:label_issues_progress": lead(GET, run_id="refinement_run"),
    "evaluation:label_issues_send": lead(POST, status=302, run_id="refinement_run"),
    "evaluation:labelstudio_import": lead(GET, POST),
    "evaluation:labelstudio_import_job": lead(GET, job_id="labelstudio_job"),
    "evaluation:labelstudio_import_job_progress": lead(GET, job_id="labelstudio_job"),
    # -- evaluation
    "evaluation:metrics_overview": lead(GET),
    "evaluation:metrics_agreement": lead(GET),
    "evaluation:metrics_diversity": lead(GET),
    "evaluation:metrics_estimates": lead(GET),
    "evaluation:metrics_benchmark": lead(GET),
    "evaluation:benchmark_start": lead(POST, status=302),
    "evaluation:benchmark_detail": lead(GET, run_id="benchmark_run"),
    "evaluation:metrics_preferences": lead(GET),
    "evaluation:pairwise_import": lead(GET, POST),
    "evaluation:pairwise_from_generation": lead(GET, POST),
    "evaluation:pairwise_review": member(GET, POST),
    "evaluation:pairwise_waiting_badge": member(GET),
    "evaluation:judge_start": lead(
        POST, status=302, data={"kind": "rating"}, body_ids={"endpoint": "endpoint"}
    ),
    "evaluation:judge_detail": lead(GET, run_id="judge_run"),
    "evaluation:metrics_recompute": lead(POST, status=302),
    "evaluation:metrics_refresh_status": lead(GET, job_id="metrics_refresh"),
    "evaluation:metrics_csv": lead(GET, consts={"table": "label-distribution"}),
    # -- the token API
    "api:snapshots": api(),
    "api:snapshot_detail": api(version="snapshot"),
    "api:snapshot_download": api(version="snapshot", consts={"file_format": "jsonl"}),
    "api:export_job": api(job_id="export_job"),
}

# A pair is judged on the Compare pairs page with its id in the body: checked as a second case of that URL.
PAIR_POST = member(POST, GET, status=302, data={"choice": "first"}, body_ids={"item": "pair"})


# ------------------------------------------------------------------------------------------ the URLconf


@dataclass(frozen=True)
class Route:
    name: str  # "namespace:name", or the route itself for an unnamed pattern
    route: str
    pattern: URLPattern

    @property
    def is_admin(self) -> bool:
        return self.name.startswith("admin:") or self.route.startswith("admin/")


def walk(patterns=None, prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace
            if pattern.namespace:
                inner = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            route = prefix + str(pattern.pattern)
            name = (f"{namespace}:{pattern.name}" if namespace else pattern.name) if pattern.name else route
            yield Route(name, route, pattern)


ROUTES = list(walk())
APP_ROUTES = [route for route in ROUTES if not route.is_admin]
ADMIN_ROUTES = [route for route in ROUTES if route.is_admin]


def test_every_url_has_a_case():
    """A new URL fails here until someone writes down who may open it (and the suite then checks it)."""
    missing = [
        f"add a case for {route.name} ({route.route})" for route in APP_ROUTES if route.name not in CASES
    ]
    assert not missing, "\n".join(missing)
    stale = set(CASES) - {route.name for route in APP_ROUTES}
    assert not stale, f"cases for URLs that no longer exist: {sorted(stale)}"


@pytest.mark.parametrize("route", APP_ROUTES, ids=[route.name for route in APP_ROUTES])
def test_every_case_names_each_parameter_of_its_url(route):
    case = CASES[route.name]
    parameters = set(route.pattern.pattern.converters) | set(re.findall(r"<(?:\w+:)?(\w+)>", route.route))
    assert parameters - {"project_id"} == set(case.ids) | set(case.consts), route.name


def cases(*kinds: Who) -> list:
    found = [pytest.param(name, CASES[name], id=name) for name in CASES if CASES[name].who in kinds]
    if Who.MEMBER in kinds:
        found.append(
            pytest.param("evaluation:pairwise_review", PAIR_POST, id="evaluation:pairwise_review-POST-pair")
        )
    return found


# ------------------------------------------------------------------------------------------ the world
#
# Both projects and their worlds are built once for the module, inside a transaction that is rolled back when
# the module ends (`worlds`). Each test runs in a savepoint nested in it (pytest-django's `db`, Django's
# TestCase semantics), so whatever a test writes (the lead's POSTs) is undone before the next test, and
# transaction.on_commit still never fires. What a savepoint does not undo is made new for each test by
# `fresh_state`: the media folder, the session files and the local cache (gold rate, routing state, …).
# The fixtures below stand in for the conftest's `lead`, `annotator`, `outsider` and `project` (same usernames
# and password, same project) and give each test freshly loaded rows.

UPLOAD = "text,label\nA delight from start to finish.,positive\n"


@pytest.fixture(autouse=True)
def fresh_state(settings, tmp_path):
    """A new media folder and session store for each test, and an empty local cache (its values outlive the
    savepoint: a gold rate a lead's POST set would otherwise be served to the next test). The sessions stay
    in files (the settings' backend) but in the test's own folder: the shared var/cache/sessions holds every
    session the suite ever made, and the file cache lists its whole folder on each write."""
    settings.MEDIA_ROOT = tmp_path / "media"
    sessions = settings.CACHES["sessions"]
    if sessions["BACKEND"] == "django.core.cache.backends.filebased.FileBasedCache":
        settings.CACHES = {
            **settings.CACHES,
            "sessions": {**sessions, "LOCATION": str(tmp_path / "sessions")},
        }
    caches["default"].clear()
    yield
    caches["default"].clear()


def write_upload(files: Path, project_id: int) -> Path:
    upload = files / f"import-{project_id}.csv"
    upload.write_text(UPLOAD)
    return upload


def build_world(project: Project, *, lead_user, annotator_user, files: Path, version: int) -> dict[str, int]:
    """One object of every kind a URL points at, all in `project`. `version` is the project's first snapshot
    version: the two projects get different ones, so a version number of one names nothing in the other."""
    upload = write_upload(files, project.pk)
    config = GenerationConfigFactory(project=project, created_by=lead_user)
    run = GenerationRunFactory(config=config, created_by=lead_user)
    review.review_gold_rate_set(project=project, gold_rate=0.0)  # the queue serves our items, not gold checks
    answered = answered_assignment(project=project, annotator=annotator_user)
    reserved = reserved_assignment(project=project, annotator=annotator_user)
    SnapshotFactory(project=project, version=version)
    snapshot = SnapshotFactory(project=project, version=version + 1)
    return {
        "membership": MembershipFactory(project=project).pk,
        "invitation": InvitationFactory(project=project, created_by=lead_user).pk,
        "import_job": ImportJobFactory(project=project, created_by=lead_user, stored_path=str(upload)).pk,
        "endpoint": LLMEndpointFactory(project=project).pk,
        "config": config.pk,
        "proposal": ConditionValueProposalFactory(config=config).pk,
        "generation_run": run.pk,
        "generation_item": GenerationItemFactory(run=run).pk,
        "labelling_run": LabellingRunFactory(project=project).pk,
        "signals_run": SignalsRunFactory(project=project).pk,
        "answered_assignment": answered.pk,
        "reserved_assignment": reserved.pk,
        "sample": SampleFactory(project=project).pk,
        "sample_action_job": SampleActionJobFactory(project=project, created_by=lead_user).pk,
        "gold": GoldItemFactory(project=project).pk,
        "text_correction": TextCorrectionFactory(sample__project=project).pk,
        "snapshot": snapshot.version,
        "snapshot_job": SnapshotJobFactory(project=project).pk,
        "export_job": ExportJobFactory(snapshot=snapshot).pk,
        "refinement_run": RefinementRunFactory(project=project).pk,
        "labelstudio_job": LabelStudioImportJobFactory(project=project).pk,
        "benchmark_run": BenchmarkRunFactory(project=project).pk,
        "judge_run": JudgeRunFactory(project=project).pk,
        "metrics_refresh": MetricsRefreshFactory(project=project).pk,
        "pair": PairwiseItemFactory(project=project).pk,
    }


@dataclass(frozen=True)
class Worlds:
    """The ids of what the module's transaction holds."""

    users: Mapping[str, int]  # lead, annotator, outsider, other_lead
    project: int
    other: int
    world: World
    other_world: World
    files: Path  # the import uploads the worlds' import jobs point at; media/ is MEDIA_ROOT while building


def build_worlds(files: Path) -> Worlds:
    lead_user, annotator_user = make_user("lena_lead"), make_user("arno_annotator")
    # the conftest's `project`
    project = Project.objects.create(name="Film reviews", created_by=lead_user)
    Membership.objects.create(project=project, user=lead_user, role=Role.LEAD)
    Membership.objects.create(project=project, user=annotator_user, role=Role.ANNOTATOR)
    codebook_create_version(
        project=project,
        user=lead_user,
        task_description="Classify the sentiment of a film review.",
        guidelines="Judge the **reviewer's** opinion, not the plot.",
        labels=LABELS,
    )
    world = build_world(project, lead_user=lead_user, annotator_user=annotator_user, files=files, version=1)
    outsider = make_user("olga_outsider")
    other_lead = UserFactory(username="otto_other_lead")
    # Another project. Its lead is not in ours; our lead and annotator are members of it too, so a page that
    # looked an id up among the user's projects instead of the URL's project would show up.
    other = ProjectFactory(name="Other project", created_by=other_lead)
    CodebookFactory(project=other, version=1)
    MembershipFactory(project=other, user=other_lead, role=Role.LEAD)
    MembershipFactory(project=other, user=lead_user, role=Role.LEAD)
    MembershipFactory(project=other, user=annotator_user, role=Role.ANNOTATOR)
    other_world = build_world(
        other, lead_user=lead_user, annotator_user=annotator_user, files=files, version=7
    )
    users = {"lead": lead_user, "annotator": annotator_user, "outsider": outsider, "other_lead": other_lead}
    return Worlds(
        users={role: user.pk for role, user in users.items()},
        project=project.pk,
        other=other.pk,
        world=world,
        other_world=other_world,
        files=files,
    )


@pytest.fixture(scope="module")
def worlds(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[Worlds]:
    """Both worlds, built once, in a transaction open for the whole module and rolled back at its end."""
    files = tmp_path_factory.mktemp("access-world")
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer._from_testcase = True  # as a test's own transaction: a durable block inside it is allowed
        outer.__enter__()
        try:
            with override_settings(MEDIA_ROOT=files / "media"):
                built = build_worlds(files)
        except BaseException:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
            raise
    try:
        yield built
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)
        caches["default"].clear()


def user_of(worlds: Worlds, role: str):
    return get_user_model().objects.get(pk=worlds.users[role])


@pytest.fixture(name="lead")
def lead_user(db, worlds):
    return user_of(worlds, "lead")


@pytest.fixture(name="annotator")
def annotator_user(db, worlds):
    return user_of(worlds, "annotator")


@pytest.fixture(name="outsider")
def outsider_user(db, worlds):
    return user_of(worlds, "outsider")


@pytest.fixture
def other_lead(db, worlds):
    return user_of(worlds, "other_lead")


@pytest.fixture
def project(db, worlds) -> Project:
    return Project.objects.get(pk=worlds.project)


@pytest.fixture
def other(db, worlds) -> Project:
    return Project.objects.get(pk=worlds.other)


def restore_files(worlds: Worlds, media_root: Path) -> None:
    """The worlds' files as they were made, whatever an earlier test did to them: the import uploads, and what
    building the worlds wrote to media (nothing today) copied into this test's MEDIA_ROOT."""
    for project_id in (worlds.project, worlds.other):
        write_upload(worlds.files, project_id)
    if (worlds.files / "media").exists():
        shutil.copytree(worlds.files / "media", media_root, dirs_exist_ok=True)


@pytest.fixture
def world(db, worlds, settings) -> dict[str, int]:
    restore_files(worlds, settings.MEDIA_ROOT)
    return dict(worlds.world)


@pytest.fixture
def other_world(db, worlds, settings) -> dict[str, int]:
    restore_files(worlds, settings.MEDIA_ROOT)
    return dict(worlds.other_world)


def url(name: str, case: Case, project: Project, world: World) -> str:
    kwargs: dict[str, object] = {kwarg: world[kind] for kwarg, kind in case.ids.items()} | dict(case.consts)
    if "<int:project_id>" in next(route.route for route in APP_ROUTES if route.name == name):
        kwargs["project_id"] = project.pk
    return reverse(name, kwargs=kwargs)


def client_as(user) -> Client:
    """One client per user (the conftest clients share one)."""
    client = Client()
    client.force_login(user)
    return client


def send(client: Client, method: str, path: str, data: Mapping[str, str] | None = None, **headers):
    return client.get(path, **headers) if method == GET else client.post(path, data or {}, **headers)


def answers(client: Client, case: Case, path: str, world: World, **headers) -> dict[str, int]:
    """{method: status} for every method the view takes; the permitted user's body goes with each POST."""
    return {
        method: send(client, method, path, case.body(world), **headers).status_code for method in case.methods
    }


# ------------------------------------------------------------------------------------------ anonymous


@pytest.mark.parametrize(
    "name,case",
    [
        param
        for param in cases(*Who)
        if param.values[1].who not in {Who.ANYONE, Who.OWNER, Who.API_LEAD, Who.API_USER}
    ],
)
def test_anonymous_users_are_sent_to_log_in(client, project, world, name, case):
    path = url(name, case, project, world)
    for method in case.methods:
        response = send(client, method, path, case.body(world))
        assert (response.status_code, response.get("Location", "").split("?")[0]) == (302, "/login/"), (
            f"{method} {path}"
        )


@pytest.mark.parametrize("name,case", cases(Who.API_LEAD, Who.API_USER))
def test_the_api_answers_401_without_a_valid_token(client, project, world, name, case):
    path = url(name, case, project, world)
    assert client.get(path).status_code == 401, path
    assert client.get(path, HTTP_AUTHORIZATION="Bearer ssk_not-a-token").status_code == 401, path


@pytest.mark.parametrize("name,case", cases(Who.ANYONE))
def test_public_pages_open_for_anonymous_users(client, db, name, case):
    path = reverse(name, kwargs=dict(case.consts))
    assert client.generic(case.methods[0], path).status_code == case.status, name


# ------------------------------------------------------------------------------------------ lead pages


@pytest.mark.parametrize("name,case", cases(Who.LEAD, Who.MEMBER))
def test_outsiders_and_leads_of_other_projects_get_404(
    project, world, other, outsider, other_lead, name, case
):
    path = url(name, case, project, world)
    for user in (outsider, other_lead):
        assert answers(client_as(user), case, path, world) == dict.fromkeys(case.methods, 404), (
            f"{user} {path}"
        )


@pytest.mark.parametrize("name,case", cases(Who.LEAD))
def test_an_annotator_of_the_project_gets_403_on_lead_pages(project, world, annotator, name, case):
    path = url(name, case, project, world)
    assert answers(client_as(annotator), case, path, world) == dict.fromkeys(case.methods, 403), path


@pytest.mark.parametrize("name,case", cases(Who.LEAD))
def test_the_lead_gets_each_lead_page_with_this_projects_ids(project, world, lead, name, case):
    path = url(name, case, project, world)
    client = client_as(lead)
    assert send(client, case.methods[0], path, case.body(world)).status_code == case.status, path
    for method in {"GET", "POST", "PUT", "DELETE"} - set(case.methods):
        assert client.generic(method, path).status_code == 405, f"{method} {path}: add the method to the case"


@pytest.mark.parametrize("name,case", [param for param in cases(Who.LEAD) if param.values[1].uses_ids])
def test_the_lead_gets_404_for_another_projects_ids_in_this_projects_url(
    project, world, other_world, lead, name, case
):
    path = url(name, case, project, other_world)
    response = {
        method: send(client_as(lead), method, path, case.body(other_world)).status_code
        for method in case.methods
    }
    assert response == dict.fromkeys(case.methods, 404), path


# ------------------------------------------------------------------------------------------ annotator pages


@pytest.mark.parametrize("name,case", cases(Who.MEMBER))
def test_the_annotator_gets_each_annotator_page(project, world, annotator, name, case):
    path = url(name, case, project, world)
    client = client_as(annotator)
    assert send(client, case.methods[0], path, case.body(world)).status_code == case.status, path
    for method in {"GET", "POST", "PUT", "DELETE"} - set(case.methods):
        assert client.generic(method, path).status_code == 405, f"{method} {path}: add the method to the case"


@pytest.mark.parametrize("name,case", [param for param in cases(Who.MEMBER) if param.values[1].uses_ids])
def test_the_annotator_gets_404_for_their_own_objects_of_another_project(
    project, world, other_world, annotator, name, case
):
    path = url(name, case, project, other_world)
    response = send(client_as(annotator), case.methods[0], path, case.body(other_world))
    assert response.status_code == 404, path


@pytest.mark.parametrize("name,case", [param for param in cases(Who.MEMBER) if param.values[1].ids])
def test_another_member_gets_404_for_the_annotators_own_items(project, world, lead, name, case):
    path = url(name, case, project, world)
    assert answers(client_as(lead), case, path, world) == dict.fromkeys(case.methods, 404), path


# ------------------------------------------------------------------------------------------ account pages


@pytest.mark.parametrize("name,case", cases(Who.USER))
def test_every_logged_in_user_gets_the_account_pages(lead, annotator, outsider, name, case, settings):
    settings.PROJECT_CREATORS = (
        "everyone"  # project_new: by default staff only (tests/generation/test_endpoint_security.py)
    )
    for user in (lead, annotator, outsider):
        assert send(client_as(user), case.methods[0], reverse(name)).status_code == case.status, (
            f"{user} {name}"
        )


@pytest.mark.parametrize("name,case", cases(Who.STAFF))
def test_only_staff_get_the_staff_pages(admin_user, lead, annotator, outsider, name, case):
    for user in (lead, annotator, outsider):
        assert answers(client_as(user), case, reverse(name), {}) == dict.fromkeys(case.methods, 403), (
            f"{user} {name}"
        )
    assert send(client_as(admin_user), case.methods[0], reverse(name)).status_code == case.status, name


@pytest.mark.parametrize("name,case", cases(Who.OWNER))
def test_only_the_owner_may_act_on_their_token(client, lead, annotator, outsider, name, case):
    token, _ = api_token_create(user=lead, name="laptop")
    path = reverse(name, kwargs={"token_id": token.pk})
    for method in case.methods:
        response = send(client, method, path)
        assert (response.status_code, response.get("Location", "").split("?")[0]) == (302, "/login/"), path
    for user in (annotator, outsider):
        assert answers(client_as(user), case, path, {}) == dict.fromkeys(case.methods, 404), f"{user} {path}"
    assert send(client_as(lead), case.methods[0], path).status_code == case.status, path


# ------------------------------------------------------------------------------------------ the token API


def bearer(user) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {api_token(user)}"}


@pytest.mark.parametrize("name,case", cases(Who.API_LEAD))
def test_the_api_gives_a_projects_data_to_its_leads_only(
    client, project, world, other_world, lead, annotator, outsider, other_lead, name, case
):
    """README: "Only the project's leads may list or download" — annotators 403, non-members 404."""
    path = url(name, case, project, world)
    assert client.get(path, **bearer(lead)).status_code == case.status, path
    assert client.get(path, **bearer(annotator)).status_code == 403, path
    assert client.get(path, **bearer(outsider)).status_code == 404, path
    assert client.get(path, **bearer(other_lead)).status_code == 404, path
    if case.ids:
        foreign = url(name, case, project, other_world)
        assert client.get(foreign, **bearer(lead)).status_code == 404, foreign


@pytest.mark.parametrize("name,case", cases(Who.API_USER))
def test_the_api_answers_every_token_holder(client, lead, annotator, outsider, name, case):
    for user in (lead, annotator, outsider):
        assert client.get(reverse(name), **bearer(user)).status_code == case.status, f"{user} {name}"


# ------------------------------------------------------------------------------------------ the admin

# Rows of models that only the admin shows (the world above makes the others). A newly registered model with
# no row fails test_staff_open_the_admin_pages_with_real_ids until it gets one here.
ADMIN_ONLY_ROWS: dict[str, Callable[[Project], object]] = {
    "auth.group": lambda project: Group.objects.create(name="reviewers"),
    "synthstudio.workerheartbeat": lambda project: WorkerHeartbeat.objects.create(hostname="celery@test"),
    "generation.llmcall": lambda project: LLMCall.objects.create(
        key="0" * 64, base_url="http://127.0.0.1:9/v1", model="test-model", request={}, response={}
    ),
    "annotation.samplesignals": lambda project: SampleSignals.objects.create(
        sample=SampleFactory(project=project)
    ),
    "annotation.routingpolicy": lambda project: RoutingPolicy.objects.create(project=project),
    "axes.accessattempt": lambda project: apps.get_model("axes", "AccessAttempt").objects.create(
        user_agent="test",
        ip_address="127.0.0.1",
        username="someone",
        http_accept="*/*",
        path_info="/login/",
        get_data="",
        post_data="",
        failures_since_start=1,
    ),
    "axes.accesslog": lambda project: apps.get_model("axes", "AccessLog").objects.create(
        user_agent="test", ip_address="127.0.0.1", username="someone", http_accept="*/*", path_info="/login/"
    ),
    "axes.accessfailurelog": lambda project: apps.get_model("axes", "AccessFailureLog").objects.create(
        user_agent="test", ip_address="127.0.0.1", username="someone", http_accept="*/*", path_info="/login/"
    ),
}


@pytest.fixture
def admin_object(project, world) -> Callable[[type], object]:
    """A real row of a model: one the world made, or one made here for the admin-only models."""

    def row_of(model: type):
        obj = model._default_manager.first()
        if obj is None:
            label = model._meta.label_lower
            assert label in ADMIN_ONLY_ROWS, f"add a row of {label} to build_world or ADMIN_ONLY_ROWS"
            obj = ADMIN_ONLY_ROWS[label](project)
        return obj

    return row_of


def admin_path(route: Route, row_of: Callable[[type], object]) -> str:
    """The route with real values: the id of a row of the route's model (a project's for the other routes)."""
    model_admin = getattr(route.pattern.callback, "model_admin", None)
    model = model_admin.model if model_admin is not None else Project
    obj = row_of(model)
    values = {
        "object_id": str(obj.pk),
        "id": str(obj.pk),
        "content_type_id": str(ContentType.objects.get_for_model(model).pk),
        "app_label": model._meta.app_label,
        "url": "no-such-page/",
    }
    path = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda match: values[match.group(1)], route.route)
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda match: values[match.group(1)], path)
    return "/" + path.lstrip("^").rstrip("$")


@pytest.mark.parametrize("route", ADMIN_ROUTES, ids=[route.name for route in ADMIN_ROUTES])
def test_the_admin_sends_everyone_but_staff_to_its_login(
    client, lead, annotator, outsider, admin_object, route
):
    path = admin_path(route, admin_object)
    # the admin's login page is public; its logout sends a non-staff user to the admin's index
    expected = {"admin:login": (200, ""), "admin:logout": (302, "/admin/")}.get(
        route.name, (302, "/admin/login/")
    )
    for user in (None, lead, annotator, outsider):
        response = (client_as(user) if user else Client()).get(path)
        assert (response.status_code, response.get("Location", "").split("?")[0]) == expected, (
            f"{user} {path}"
        )


ADMIN_MODEL_ROUTES = [route for route in ADMIN_ROUTES if hasattr(route.pattern.callback, "model_admin")]


@pytest.mark.parametrize("route", ADMIN_MODEL_ROUTES, ids=[route.name for route in ADMIN_MODEL_ROUTES])
def test_staff_open_the_admin_pages_with_real_ids(rf, admin_user, admin_object, route):
    """Each model page answers a superuser as its ModelAdmin's permissions say (no "add" for log rows)."""
    model_admin = route.pattern.callback.model_admin
    request = rf.get("/admin/")
    request.user = admin_user
    action = route.name.rsplit("_", 1)[-1]
    allowed = {
        "add": model_admin.has_add_permission(request),
        "delete": model_admin.has_delete_permission(request),
    }.get(action, model_admin.has_view_or_change_permission(request))
    expected = (
        302 if route.name == route.route else 200 if allowed else 403
    )  # unnamed: redirects to the change page
    client = Client()
    client.force_login(admin_user)
    path = admin_path(route, admin_object)
    assert client.get(path).status_code == expected, path
