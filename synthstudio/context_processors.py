from django.conf import settings


def synthstudio(request):
    return {"llm_configured": bool(settings.LLM_BASE_URL)}
