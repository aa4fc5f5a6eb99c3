# sipresponder container: answers SIP on 5060/udp and 5060/tcp with the bundled
# default scenario. Mount your own scenarios on /scenarios and pass --scenario.
ARG BASE=python:3.12-slim-bookworm

FROM ${BASE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sipresponder ./sipresponder
COPY scenarios ./scenarios
RUN python3 -m venv /opt/sipresponder \
 && /opt/sipresponder/bin/pip install --no-cache-dir '.[fast]'

FROM ${BASE}
COPY --from=build /opt/sipresponder /opt/sipresponder
COPY scenarios /scenarios
RUN useradd --system --uid 5060 --no-create-home sipresponder
USER sipresponder
ENV PATH=/opt/sipresponder/bin:$PATH
EXPOSE 5060/udp 5060/tcp
STOPSIGNAL SIGTERM
ENTRYPOINT ["sipresponder"]
CMD ["serve", "--scenario", "/scenarios/default.toml"]
