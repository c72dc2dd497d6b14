"""The baseline for `process_image`: what the original sample did on every request, served on uvicorn.

Per request it makes a new `DefaultAzureCredential` and a new `AzureOpenAI` client, writes the upload to one
fixed file `temp.jpg` (in the process's working directory), reads it back, base64-encodes it and calls chat
completions. The handler is synchronous and runs in a thread pool sized like the Azure Functions Python
worker's (min(32, CPUs + 4)), as a sync function does under the Functions host, so concurrent requests
share `temp.jpg` as they did in the sample.

    python -m bench.baseline_app --port 0      # needs GPT4V_ENDPOINT, GPT4V_DEPLOYMENT and the identity env
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
from concurrent.futures import ThreadPoolExecutor

from azure.identity import DefaultAzureCredential, get_bearer_token_provider
from openai import AzureOpenAI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

API_VERSION = "2024-10-21"
_worker_threads = ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4), thread_name_prefix="worker")


def process_image_as_the_sample_did(image: bytes, instructions: str) -> str:
    credential = DefaultAzureCredential()
    token_provider = get_bearer_token_provider(credential, "https://cognitiveservices.azure.com/.default")
    client = AzureOpenAI(
        azure_endpoint=os.environ["GPT4V_ENDPOINT"],
        api_version=API_VERSION,
        azure_ad_token_provider=token_provider,
    )
    with open("temp.jpg", "wb") as upload:
        upload.write(image)
    with open("temp.jpg", "rb") as saved:
        encoded = base64.b64encode(saved.read()).decode("ascii")
    response = client.chat.completions.create(
        model=os.environ["GPT4V_DEPLOYMENT"],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": instructions},
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{encoded}"}},
                ],
            }
        ],
        max_tokens=1000,
    )
    return response.choices[0].message.content or ""


async def process_image(request: Request) -> Response:
    instructions = request.query_params.get("instructions") or "Describe this image"
    image = await request.body()
    loop = asyncio.get_running_loop()
    try:
        text = await loop.run_in_executor(_worker_threads, process_image_as_the_sample_did, image, instructions)
    except Exception as error:  # the sample answered 500 with the error text
        return PlainTextResponse(f"{type(error).__name__}: {error}", status_code=500)
    return PlainTextResponse(text)


app = Starlette(routes=[Route("/api/process_image", process_image, methods=["POST"])])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="info")


if __name__ == "__main__":
    main()
