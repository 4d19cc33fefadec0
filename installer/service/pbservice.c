/* praxisbackup-service.exe: runs "praxisbackup serve" as a Windows service.
 *
 * The SCM needs a program that speaks its protocol (StartServiceCtrlDispatcher, status
 * reports, stop requests); "praxisbackup serve" is a console program. This wrapper starts
 *   "<its folder>\python\python.exe" -m praxisbackup.cli.main serve
 * with its output appended to %ProgramData%\praxisbackup\logs\service.log (through a pipe
 * and a copying thread: Wine's python.exe cannot start with a regular file as its standard
 * output, and a pipe also keeps the log writable while the child runs), reports RUNNING,
 * and on a stop request (or system shutdown) sends the child CTRL_BREAK: the nightly job turns
 * that into an orderly stop that starts the practice's services again before it exits (job.py,
 * SIGBREAK). It keeps reporting STOP_PENDING with fresh checkpoints while it waits, and ends
 * the child the hard way only after STOP_GRACE_MS. When the child ends by itself, the service
 * reports STOPPED with the child's exit code as a service-specific error, so the SCM's failure
 * actions (restart, set by the installer with "sc failure" and "sc failureflag 1") apply.
 *
 * Build: x86_64-w64-mingw32-gcc -O2 -municode -s -o praxisbackup-service.exe pbservice.c \
 *        -lshell32 -lole32 -luuid
 */
#include <windows.h>
#include <shlobj.h>
#include <knownfolders.h>
#include <stdio.h>
#include <wchar.h>

#define SERVICE_NAME L"praxisbackup"
#define STOP_GRACE_MS (10 * 60 * 1000) /* a running job restarts the database first */
#define POLL_MS 1000

static SERVICE_STATUS_HANDLE status_handle;
static SERVICE_STATUS status;
static HANDLE stop_event;
/* Named, so that "praxisbackup serve" can wait for it too (PRAXISBACKUP_STOP_EVENT): Wine
 * does not deliver CTRL_BREAK to a service's child; the event works on Windows and Wine. */
static HANDLE child_stop_event;
static DWORD checkpoint;

static void report(DWORD state, DWORD exit_code, DWORD specific, DWORD wait_hint)
{
    status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    status.dwCurrentState = state;
    status.dwControlsAccepted =
        state == SERVICE_RUNNING ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN : 0;
    status.dwWin32ExitCode = exit_code;
    status.dwServiceSpecificExitCode = specific;
    status.dwWaitHint = wait_hint;
    status.dwCheckPoint =
        (state == SERVICE_RUNNING || state == SERVICE_STOPPED) ? 0 : ++checkpoint;
    SetServiceStatus(status_handle, &status);
}

static DWORD WINAPI control(DWORD code, DWORD type, LPVOID data, LPVOID context)
{
    (void)type;
    (void)data;
    (void)context;
    if (code == SERVICE_CONTROL_STOP || code == SERVICE_CONTROL_SHUTDOWN) {
        report(SERVICE_STOP_PENDING, NO_ERROR, 0, 5000);
        SetEvent(stop_event);
        return NO_ERROR;
    }
    return code == SERVICE_CONTROL_INTERROGATE ? NO_ERROR : ERROR_CALL_NOT_IMPLEMENTED;
}

/* %ProgramData%\praxisbackup\logs\service.log, opened for appending. */
static HANDLE open_log(void)
{
    /* The known folder, as praxisbackup itself finds it: a service's environment may lack
     * %ProgramData% or (under Wine) point it elsewhere. */
    wchar_t dir[MAX_PATH], path[MAX_PATH];
    PWSTR known = NULL;
    if (SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, NULL, &known) == S_OK && known &&
        wcslen(known) < MAX_PATH)
        wcscpy(dir, known);
    else
        wcscpy(dir, L"C:\\ProgramData");
    CoTaskMemFree(known);
    swprintf(path, MAX_PATH, L"%ls\\praxisbackup", dir);
    CreateDirectoryW(path, NULL);
    swprintf(path, MAX_PATH, L"%ls\\praxisbackup\\logs", dir);
    CreateDirectoryW(path, NULL);
    swprintf(path, MAX_PATH, L"%ls\\praxisbackup\\logs\\service.log", dir);
    /* GENERIC_WRITE, positioned at the end: Wine does not create a file opened with
     * FILE_APPEND_DATA alone. Only the copying thread writes to it. */
    HANDLE log = CreateFileW(path, GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL,
                             OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (log != INVALID_HANDLE_VALUE)
        SetFilePointer(log, 0, NULL, FILE_END);
    return log;
}

static void finish_log(HANDLE copier, HANDLE log)
{
    if (copier) {
        WaitForSingleObject(copier, 5000); /* the rest of the child's output */
        CloseHandle(copier);
    }
    if (log != INVALID_HANDLE_VALUE)
        CloseHandle(log);
}

/* Copies the child's output from the pipe into the log until the child closes it. */
struct copy_args {
    HANDLE from, to;
};

static DWORD WINAPI copy_output(LPVOID param)
{
    struct copy_args *args = (struct copy_args *)param;
    char buffer[4096];
    DWORD got, put;
    while (ReadFile(args->from, buffer, sizeof buffer, &got, NULL) && got > 0) {
        if (args->to != INVALID_HANDLE_VALUE)
            WriteFile(args->to, buffer, got, &put, NULL);
    }
    CloseHandle(args->from);
    return 0;
}

static void WINAPI service_main(DWORD argc, LPWSTR *argv)
{
    (void)argc;
    (void)argv;
    status_handle = RegisterServiceCtrlHandlerExW(SERVICE_NAME, control, NULL);
    if (!status_handle)
        return;
    stop_event = CreateEventW(NULL, TRUE, FALSE, NULL);
    report(SERVICE_START_PENDING, NO_ERROR, 0, 10000);

    wchar_t exe[MAX_PATH], cmd[3 * MAX_PATH];
    DWORD n = GetModuleFileNameW(NULL, exe, MAX_PATH);
    if (n == 0 || n >= MAX_PATH) {
        report(SERVICE_STOPPED, GetLastError(), 0, 0);
        return;
    }
    wchar_t *slash = wcsrchr(exe, L'\\');
    if (slash)
        *slash = 0;
    swprintf(cmd, 3 * MAX_PATH, L"\"%ls\\python\\python.exe\" -m praxisbackup.cli.main serve",
             exe);

    /* A console of our own (invisible in session 0) that the child shares, so that it can be
     * sent CTRL_BREAK. */
    AllocConsole();
    HANDLE log = open_log();
    SECURITY_ATTRIBUTES inherit = {sizeof inherit, NULL, TRUE};
    HANDLE pipe_read = NULL, pipe_write = NULL;
    if (!CreatePipe(&pipe_read, &pipe_write, &inherit, 0)) {
        report(SERVICE_STOPPED, GetLastError(), 0, 0);
        return;
    }
    SetHandleInformation(pipe_read, HANDLE_FLAG_INHERIT, 0); /* only the child's end */
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    ZeroMemory(&si, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = NULL;
    si.hStdOutput = pipe_write;
    si.hStdError = pipe_write;
    wchar_t event_name[64];
    swprintf(event_name, 64, L"praxisbackup-service-stop-%lu", GetCurrentProcessId());
    child_stop_event = CreateEventW(NULL, TRUE, FALSE, event_name);
    if (child_stop_event)
        SetEnvironmentVariableW(L"PRAXISBACKUP_STOP_EVENT", event_name);
    SetEnvironmentVariableW(L"PYTHONIOENCODING", L"utf-8");
    SetEnvironmentVariableW(L"PYTHONUNBUFFERED", L"1");
    if (!CreateProcessW(NULL, cmd, NULL, NULL, TRUE, CREATE_NEW_PROCESS_GROUP, NULL, exe, &si,
                        &pi)) {
        DWORD err = GetLastError();
        CloseHandle(pipe_read);
        CloseHandle(pipe_write);
        if (log != INVALID_HANDLE_VALUE)
            CloseHandle(log);
        report(SERVICE_STOPPED, err, 0, 0);
        return;
    }
    CloseHandle(pipe_write); /* the child holds the only write end now */
    static struct copy_args copy;
    copy.from = pipe_read;
    copy.to = log;
    HANDLE copier = CreateThread(NULL, 0, copy_output, &copy, 0, NULL);
    CloseHandle(pi.hThread);
    report(SERVICE_RUNNING, NO_ERROR, 0, 0);

    HANDLE both[2] = {stop_event, pi.hProcess};
    DWORD which = WaitForMultipleObjects(2, both, FALSE, INFINITE);
    DWORD code = 0;
    if (which == WAIT_OBJECT_0) {
        if (child_stop_event)
            SetEvent(child_stop_event);
        GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, pi.dwProcessId);
        DWORD waited = 0;
        while (WaitForSingleObject(pi.hProcess, POLL_MS) == WAIT_TIMEOUT) {
            waited += POLL_MS;
            if (waited >= STOP_GRACE_MS) {
                TerminateProcess(pi.hProcess, 1);
                WaitForSingleObject(pi.hProcess, 30000);
                break;
            }
            report(SERVICE_STOP_PENDING, NO_ERROR, 0, 5000);
        }
        CloseHandle(pi.hProcess);
        finish_log(copier, log);
        report(SERVICE_STOPPED, NO_ERROR, 0, 0);
        return;
    }
    /* The child ended by itself: a failure the SCM's recovery actions should handle. */
    GetExitCodeProcess(pi.hProcess, &code);
    CloseHandle(pi.hProcess);
    finish_log(copier, log);
    report(SERVICE_STOPPED, ERROR_SERVICE_SPECIFIC_ERROR, code ? code : 1, 0);
}

int wmain(void)
{
    SERVICE_TABLE_ENTRYW table[] = {{SERVICE_NAME, service_main}, {NULL, NULL}};
    if (!StartServiceCtrlDispatcherW(table)) {
        fwprintf(stderr, L"praxisbackup-service.exe runs as the Windows service '%ls' "
                         L"(installed by the praxisbackup setup); start it with "
                         L"'sc start praxisbackup'.\n", SERVICE_NAME);
        return 1;
    }
    return 0;
}
