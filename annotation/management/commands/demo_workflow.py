"""Fill the demo project with the rest of the workflow, offline: an unlabelled pool of customer messages, a
generation config with a finished offline run, an offline labelling run with label distributions, routing
signals, and a routing policy whose first batch waits in the annotators' review queues.

`manage.py demo` calls this after creating the users, codebook and seed samples. Every step checks what
already exists, so a second run changes nothing. Services run in-process (no worker needed)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotation.labelling.services import labelling_run_execute, labelling_run_start
from annotation.models import (
    BudgetKind,
    LabellingRun,
    ReviewTask,
    RoutingPolicy,
    RoutingStrategy,
    SampleSignals,
    SignalsRun,
)
from annotation.routing.services import routing_route_next_batch
from annotation.routing.signals import signals_refresh, signals_run_start
from generation.models import GenerationConfig
from generation.prompts import DEFAULT_TEMPLATE
from generation.services.configs import config_create_version
from generation.services.runs import run_execute, run_start
from synthstudio.models import JobStatus, Origin, Project, Role, Sample, text_hash

PROJECT_NAME = "Customer support intents (demo)"
GENERATION_CONFIG_NAME = "demo: support messages"
GENERATED_COUNT = 12
ROUTING_BUDGET_SHARE = 0.3
ROUTING_BATCH_SIZE = 10
ANNOTATORS_PER_ITEM = 2

# Written for the demo: realistic, varied in tone and length, several deliberately ambiguous (two topics,
# vague requests, off-codebook questions) so that the label distributions and the routing have work to do.
UNLABELLED_POOL = [
    "hello?? my order was supposed to come yesterday and the tracking page is blank",
    "I was billed 34.99 but the basket said 29.99. Where does the extra come from?",
    "Can't sign in since the update, it just says 'something went wrong'.",
    "The lamp arrived but the switch does nothing. Bulb is fine, I tried another one.",
    "Good morning, could you tell me whether order 51920 has left the warehouse yet?",
    "The refund for my returned boots shows as 'processed' but my bank has nothing.",
    "Your app keeps asking for a verification code that never comes by SMS.",
    "The drawer fronts of the dresser don't line up, one of the holes was drilled in the wrong place.",
    "Parcel came open and half the items are missing. Not sure if it's the courier or you.",
    "I paid with PayPal and it failed, then I paid by card and now PayPal took the money too.",
    "Someone ordered a TV with my account! I did not place order 77310.",
    "The coffee machine shows error E04 every morning. It's four months old.",
    "Do you ship to Switzerland? And will I have to pay customs?",
    "Please cancel my order and refund me, the delivery date keeps moving.",
    "I forgot which email I used to register. Can you look it up by my phone number?",
    "The charger that came with the laptop gets extremely hot. Is that normal?",
    "Why is there a 'handling fee' on my invoice? Nobody mentioned that.",
    "The driver left my parcel with a neighbour I don't know. Which house is it?",
    "I can log in on the website but the app says my password is wrong.",
    "The cushion covers shrank a lot after the first wash at 30 degrees, as the label says.",
    "Hi, I'd like to add a second item to my order before it ships, is that possible?",
    "My gift card balance shows 0 but I only used 20 of the 50.",
    "Two-factor is on and I lost the phone. I'm travelling and can't get into my account.",
    "The bike helmet has a crack inside the foam, I noticed it when I unpacked it.",
    "My order has been 'processing' for six days. Is something wrong with it?",
    "I was charged in dollars instead of euros and my bank added a conversion fee.",
    "The reset link says it has expired, every single time, even if I click it right away.",
    "Package arrived, but it's someone else's order. I have a box of dog food I didn't buy.",
    "The watch strap broke within a month, and the buckle scratched the glass when it fell.",
    "Can I get a copy of all my invoices from last year for my accountant?",
    "Hello, I still haven't heard back about my complaint from last week. This is getting ridiculous.",
    "Is the 2-year warranty valid if I bought it during the sale?",
    "The courier wants me to pay cash on delivery but I already paid online.",
    "I keep getting logged out and then my basket is empty again.",
    "The printer prints blank pages even with the new cartridge you sent.",
    "Your website charged me but shows no order in my account. Did it go through?",
    "Can you deliver on Saturday? I'm not home during the week.",
    "Your newsletter keeps coming even though I unsubscribed twice.",
    "The tent is missing two poles, so I can't set it up for our trip this weekend.",
    "I want to return the sofa. Who picks it up and do I pay for that?",
    "Great service last time, just wondering if you sell spare filters for the air purifier?",
    "My account shows an address in another city that I never entered.",
    "Delivered the wrong size. I ordered M and got XL, the packing slip says M.",
    "Can I pay the rest of my order in instalments?",
    "Tracking says 'returned to sender'. Why? My address is correct.",
    "The headphones arrived with a scratched case and the box had clearly been opened before.",
    "I need to change the name on the invoice, it should be my company, not me.",
    "The verification email goes to my old work address which I can't access anymore.",
    "When I click 'pay' nothing happens. Tried Chrome and Safari.",
    "The fridge is making a loud clicking noise since the day it was installed.",
    "I ordered the same thing twice by accident. Can you cancel one?",
    "The pickup point you chose for me closed down last month.",
    "It says my card was declined but my bank says there was no attempt.",
    "My daughter used my account and changed the password, how do I get it back?",
    "The paint on the chair is peeling off after a week on the balcony.",
    "Why did my order get split into three deliveries with three shipping fees?",
    "Could someone call me? It's about my order and it's complicated.",
    "The kettle you sent as a replacement leaks exactly like the first one.",
    "The voucher from your apology email doesn't work at checkout.",
    "The delivery man said he rang but the doorbell camera shows nobody came.",
    "Is it safe to use the same login for the shop and the forum?",
    "I bought the wrong model of phone case. Can I swap it for the right one?",
    "The vacuum's battery lasts ten minutes, the page says forty.",
    "Hi, where can I see my order history? The page is empty since I changed my email.",
    "Three weeks, four emails, no answer. I just want my money back for the broken mixer.",
    "My parcel is stuck at customs and they ask me for an invoice I don't have.",
]


class Command(BaseCommand):
    help = "Add the demo's unlabelled pool, offline generation and labelling runs, signals and a routed first batch."

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(name=PROJECT_NAME).order_by("id").first()
        if project is None or project.codebook is None:
            raise CommandError("Run `manage.py demo` first: it creates the demo project and its codebook.")
        lead = project.memberships.filter(role=Role.LEAD).select_related("user").first().user
        added = _unlabelled_pool(project)
        generation_run = _generation_run(project, lead)
        labelling_run = _labelling_run(project, lead)
        signals = _signals(project)
        tasks = _first_routed_batch(project, lead)
        self.stdout.write(
            f"Demo workflow: {added} new unlabelled messages; offline generation run {generation_run.status} "
            f"({generation_run.total} items); offline labelling run {labelling_run.status} "
            f"({labelling_run.done} samples); signals for {signals} samples; "
            f"{tasks} routed review tasks waiting for the annotators."
        )


def _unlabelled_pool(project: Project) -> int:
    return demo_texts_import(
        project, UNLABELLED_POOL, source="demo pool, written by the synthstudio team (unlabelled)"
    )


def demo_texts_import(project: Project, texts, *, source: str) -> int:
    """Add `texts` the project does not hold yet as imported, unlabelled samples; returns how many were new."""
    existing = set(Sample.objects.filter(project=project).values_list("text_hash", flat=True))
    new = [text for text in texts if text_hash(text) not in existing]
    Sample.objects.bulk_create(
        Sample(
            project=project,
            text=text,
            text_hash=text_hash(text),
            origin=Origin.IMPORTED,
            provenance={"source": source},
        )
        for text in new
    )
    return len(new)


def _generation_run(project: Project, lead):
    config = (
        GenerationConfig.objects.filter(project=project, name=GENERATION_CONFIG_NAME)
        .order_by("-version")
        .first()
    )
    if config is None:
        config = config_create_version(
            project=project,
            user=lead,
            name=GENERATION_CONFIG_NAME,
            values={
                "endpoint": None,  # the offline generator: its samples say "offline" in their provenance
                "role_preamble": "Suppose you are a customer writing to the support team of an online shop.",
                "template": DEFAULT_TEMPLATE,
                "dimensions": [
                    {"name": "tone", "values": ["polite", "frustrated", "terse"]},
                    {"name": "channel", "values": ["email", "chat"]},
                ],
                "demo_count": 2,
                "demo_strategy": "random",
                "target_count": GENERATED_COUNT,
                "sampling_mode": "balanced",
            },
        )
    run = config.runs.order_by("id").first()
    if run is None:
        run = run_start(config=config, user=lead, enqueue_task=False)
    return run_execute(run_id=run.pk)  # returns at once when already finished


def _labelling_run(project: Project, lead) -> LabellingRun:
    run = LabellingRun.objects.filter(project=project).order_by("id").first()
    if run is None:
        run = labelling_run_start(project=project, user=lead, method="offline")
    labelling_run_execute(run=run)  # in-process; the queued task finds it finished
    run.refresh_from_db()
    return run


def _signals(project: Project) -> int:
    """Finish the signals run the labelling run queued (in-process; the queued task then finds it finished)."""
    for run in SignalsRun.objects.filter(project=project, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]):
        signals_refresh(project=project, run=run)
    if not SignalsRun.objects.filter(project=project, status=JobStatus.SUCCEEDED).exists():
        signals_refresh(project=project, run=signals_run_start(project=project))
    return SampleSignals.objects.filter(sample__project=project).count()


def _first_routed_batch(project: Project, lead) -> int:
    if not ReviewTask.objects.filter(project=project).exists():
        RoutingPolicy.objects.update_or_create(
            project=project,
            defaults={
                "budget_kind": BudgetKind.SHARE,
                "budget_share": ROUTING_BUDGET_SHARE,
                "strategy": RoutingStrategy.ENTROPY,
                "batch_size": ROUTING_BATCH_SIZE,
                "annotators_per_item": ANNOTATORS_PER_ITEM,
                "updated_by": lead,
            },
        )
        routing_route_next_batch(project=project)
    return ReviewTask.objects.filter(project=project, is_open=True).count()
