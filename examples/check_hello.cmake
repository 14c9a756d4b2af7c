# Feeds the example a legacy session and a 2026-07-28 request; checks both answers.
set(input "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}
{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}
{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"hello\",\"arguments\":{\"name\":\"Grace\"}}}
{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"hello\",\"arguments\":{},\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{\"elicitation\":{}}}}}
")
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/hello_in.jsonl "${input}")
execute_process(COMMAND ${BIN} INPUT_FILE ${CMAKE_CURRENT_BINARY_DIR}/hello_in.jsonl
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc TIMEOUT 20)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "hello_tool exited ${rc}: ${err}")
endif()
if(NOT out MATCHES "\"protocolVersion\":\"2025-06-18\"")
    message(FATAL_ERROR "initialize did not negotiate 2025-06-18:\n${out}")
endif()
if(NOT out MATCHES "Hello, Grace! \\(protocol 2025-06-18\\)")
    message(FATAL_ERROR "legacy tools/call answer missing:\n${out}")
endif()
if(NOT out MATCHES "\"id\":3,\"result\":{\"resultType\":\"input_required\",\"inputRequests\":{\"who\":{\"method\":\"elicitation/create\"")
    message(FATAL_ERROR "2026-07-28 call did not ask for input (MRTR):\n${out}")
endif()
message(STATUS "hello_tool answered both eras")
