/* A real Windows service for the Windows lane's SCM tests (built with mingw-w64, registered in
 * the Wine prefix with CreateService, controlled through praxisbackup's SCM code).
 *
 *   pbtestsvc.exe hold FILE [STOP_DELAY_MS [LOG]]
 *                                            holds FILE open exclusively (share mode 0) while
 *                                            running, like a database server holds its files;
 *                                            a stop request reports STOP_PENDING, waits
 *                                            STOP_DELAY_MS, closes the file, reports STOPPED.
 *                                            With LOG, "start NAME" and "stop NAME" lines are
 *                                            appended to LOG (the order services ran in).
 *   pbtestsvc.exe nostop                     never accepts a stop request (ControlService
 *                                            fails with ERROR_INVALID_SERVICE_CONTROL).
 *   pbtestsvc.exe hang                       accepts a stop request, then stays STOP_PENDING.
 *
 * Build: x86_64-w64-mingw32-gcc -O2 -municode -s -o pbtestsvc.exe pbtestsvc.c -ladvapi32
 */
#include <windows.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static SERVICE_STATUS_HANDLE status_handle;
static SERVICE_STATUS status;
static HANDLE stop_event;
static HANDLE held = INVALID_HANDLE_VALUE;
static int mode_argc;
static wchar_t **mode_argv;
static wchar_t service_name[256];

static void log_line(const char *what)
{
    if (mode_argc < 5)
        return;
    HANDLE log = CreateFileW(mode_argv[4], FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE,
                             NULL, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (log == INVALID_HANDLE_VALUE)
        return;
    char line[600];
    int n = snprintf(line, sizeof line, "%s %ls\r\n", what, service_name);
    DWORD written;
    WriteFile(log, line, (DWORD)n, &written, NULL);
    CloseHandle(log);
}

static void report(DWORD state, DWORD accepted, DWORD exit_code, DWORD wait_hint)
{
    static DWORD checkpoint = 1;
    status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    status.dwCurrentState = state;
    status.dwControlsAccepted = accepted;
    status.dwWin32ExitCode = exit_code;
    status.dwServiceSpecificExitCode = 0;
    status.dwWaitHint = wait_hint;
    status.dwCheckPoint =
        (state == SERVICE_RUNNING || state == SERVICE_STOPPED) ? 0 : checkpoint++;
    SetServiceStatus(status_handle, &status);
}

static int is_mode(const wchar_t *name)
{
    return mode_argc >= 2 && wcscmp(mode_argv[1], name) == 0;
}

static DWORD WINAPI control(DWORD code, DWORD type, LPVOID data, LPVOID context)
{
    (void)type;
    (void)data;
    (void)context;
    if (code == SERVICE_CONTROL_STOP || code == SERVICE_CONTROL_SHUTDOWN) {
        if (is_mode(L"nostop"))
            return ERROR_CALL_NOT_IMPLEMENTED;
        report(SERVICE_STOP_PENDING, 0, NO_ERROR, 10000);
        if (!is_mode(L"hang"))
            SetEvent(stop_event);
        return NO_ERROR;
    }
    if (code == SERVICE_CONTROL_INTERROGATE)
        return NO_ERROR;
    return ERROR_CALL_NOT_IMPLEMENTED;
}

static void WINAPI service_main(DWORD argc, LPWSTR *argv)
{
    if (argc > 0)
        lstrcpynW(service_name, argv[0], 256);
    status_handle = RegisterServiceCtrlHandlerExW(service_name, control, NULL);
    if (!status_handle)
        return;
    stop_event = CreateEventW(NULL, TRUE, FALSE, NULL);
    report(SERVICE_START_PENDING, 0, NO_ERROR, 5000);
    if (is_mode(L"hold")) {
        if (mode_argc < 3) {
            report(SERVICE_STOPPED, 0, ERROR_INVALID_PARAMETER, 0);
            return;
        }
        held = CreateFileW(mode_argv[2], GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_ALWAYS,
                           FILE_ATTRIBUTE_NORMAL, NULL);
        if (held == INVALID_HANDLE_VALUE) {
            report(SERVICE_STOPPED, 0, GetLastError(), 0);
            return;
        }
        DWORD written;
        WriteFile(held, "PBTESTDB", 8, &written, NULL);
        FlushFileBuffers(held);
        log_line("start");
    }
    report(SERVICE_RUNNING, is_mode(L"nostop") ? 0 : SERVICE_ACCEPT_STOP, NO_ERROR, 0);
    WaitForSingleObject(stop_event, INFINITE);
    if (is_mode(L"hold") && mode_argc >= 4)
        Sleep((DWORD)_wtoi(mode_argv[3]));
    if (held != INVALID_HANDLE_VALUE) {
        log_line("stop");
        CloseHandle(held);
    }
    report(SERVICE_STOPPED, 0, NO_ERROR, 0);
}

int wmain(int argc, wchar_t **argv)
{
    mode_argc = argc;
    mode_argv = argv;
    SERVICE_TABLE_ENTRYW table[] = {{L"", service_main}, {NULL, NULL}};
    return StartServiceCtrlDispatcherW(table) ? 0 : (int)GetLastError();
}
