from django import template

from synthstudio.markdown import render_markdown

register = template.Library()


@register.filter
def markdown(text: str):
    return render_markdown(text)


@register.filter
def percent(value, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{100 * float(value):.{int(digits)}f}%"
