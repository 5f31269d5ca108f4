"""The quickstart's tasks: what an app's ``tasks.py`` looks like."""

import time

from fluxqueue import FluxQueue

# No URL: FLUXQUEUE_BROKER_URL if set, else sqlite:///fluxqueue.db in the working directory.
fq = FluxQueue()


@fq.task(max_retries=3)
def send_welcome_email(user_id: int, email: str) -> str:
    time.sleep(0.1)  # pretend to talk to an SMTP server
    return f"welcome email for user {user_id} sent to {email}"


@fq.task(queue="default")
async def resize_image(image_id: int, width: int) -> dict[str, int]:
    return {"image_id": image_id, "width": width}


__all__ = ["resize_image", "send_welcome_email"]
